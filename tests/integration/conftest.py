"""Fixtures that start real corral daemons (separate processes on loopback); a failed
test's report carries the cluster's view (frameworks, offers, tasks) and daemon logs.
Every test here is marked `slow`: tests/run.sh runs them against the compiled core only."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from corral.testing.cluster import LocalCluster


_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A master and two agents shared by the tests of one module."""
    with LocalCluster(tmp_path_factory.mktemp("cluster"), agents=2) as c:
        yield c


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, LocalCluster):
            report.sections.append((f"cluster {name!r} when the test failed", value.diagnostics()))
