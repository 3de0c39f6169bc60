"""Fixtures that start real corral daemons (separate processes on loopback)."""
from __future__ import annotations

from typing import Iterator

import pytest

from corral.testing.cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A master and two agents shared by the tests of one module."""
    with LocalCluster(tmp_path_factory.mktemp("cluster"), agents=2) as c:
        yield c
