"""Fixtures for the high-availability tests: each test gets a real ZooKeeper server of its
own (Debian's `zookeeper` package, which tests/run.sh installs), on a free port in the
test's temp dir. Every test that starts one is marked `slow` (tests/run.sh runs those
against the compiled core only)."""
from __future__ import annotations

from typing import Iterator

import pytest

from corral.testing.zookeeper import ZooKeeperServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "zookeeper" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def zookeeper(tmp_path) -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(tmp_path / "zookeeper") as server:
        yield server
