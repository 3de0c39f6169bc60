"""A failed framework test's report carries the service's view: its plans, its nodes,
the scheduler's log and the cluster's (frameworks, tasks, daemon logs)."""
from __future__ import annotations

import json
from typing import Iterator

import pytest

from corral.examples.cassandra.testing import LocalService


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when not in ("call", "teardown") or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, LocalService):
            plans = {name: value.request("GET", f"/v1/plans/{name}") for name in ("deploy", "recovery", "decommission")}
            report.sections.append(("service plans and pods", json.dumps(
                {"plans": plans, "pods": value.request("GET", "/v1/pod/status")}, indent=1, default=str)[-6000:]))
            report.sections.append(("scheduler log", value.log_tail(80)))
            report.sections.append(("cluster", value.cluster.diagnostics(20)))
