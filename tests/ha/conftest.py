"""Fixtures for the high-availability tests: each test gets a real ZooKeeper server of its
own (Debian's `zookeeper` package, which tests/run.sh installs), on a free port in the
test's temp dir."""
from __future__ import annotations

from typing import Iterator

import pytest

from corral.testing.zookeeper import ZooKeeperServer


@pytest.fixture
def zookeeper(tmp_path) -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(tmp_path / "zookeeper") as server:
        yield server
