"""Operator endpoints on a real master: /roles, /weights and /quota, kept across a
master restart by the registry."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from corral.testing.cluster import LocalCluster, get_json


def post(address: str, path: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def restartable(tmp_path: Path):
    cluster = LocalCluster(tmp_path, agents=1)
    cluster.start()
    yield cluster
    cluster.stop()


def test_weights_and_quota_are_applied_and_survive_a_master_restart(restartable: LocalCluster) -> None:
    master = restartable.master_address
    status, body = post(master, "/weights", [{"role": "analytics", "weight": 3}])
    assert status == 200 and {"role": "analytics", "weight": 3.0} in body["weights"]
    status, body = post(master, "/quota", {"role": "analytics", "limit": "cpus:1;mem:512"})
    assert status == 200
    roles = {r["name"]: r for r in get_json(master, "/roles")["roles"]}
    assert roles["analytics"]["weight"] == 3.0
    # restart the master process on the same work dir (same address)
    restartable.master.stop()
    restartable.master.start()
    restartable.wait_agents(1)
    master = restartable.master_address
    assert {"role": "analytics", "weight": 3.0} in get_json(master, "/weights")["weights"]
    (quota,) = get_json(master, "/quota")["quotas"]
    assert quota["role"] == "analytics" and "cpus:1" in quota["limit"]


@pytest.mark.parametrize(("path", "body", "named"), [
    ("/weights", [{"role": "a//b", "weight": 1}], "a//b"),
    ("/weights", [{"role": "ok", "weight": -2}], "-2"),
    ("/weights", {"role": "ok"}, "list"),
    ("/quota", {"role": "r", "limit": "cpus:lots"}, "lots"),
    ("/quota", {"limit": "cpus:1"}, "role"),
])
def test_bad_operator_input_is_a_clear_400_and_changes_nothing(restartable: LocalCluster, path, body, named) -> None:
    master = restartable.master_address
    before = get_json(master, path)
    status, reply = post(master, path, body)
    assert status == 400 and named in reply["error"]
    assert get_json(master, path) == before


def test_operator_reserve_and_unreserve(restartable: LocalCluster) -> None:
    master = restartable.master_address
    agent_id = get_json(master, "/state")["agents"][0]["id"]
    status, body = post(master, "/reserve", {"agent_id": agent_id, "role": "db", "resources": "cpus:1;mem:128"})
    assert status == 200, body
    status, body = post(master, "/reserve", {"agent_id": agent_id, "role": "db", "resources": "cpus:500"})
    assert status == 409 and "cpus:500" in body["error"]
    status, body = post(master, "/reserve", {"agent_id": agent_id, "role": "db//x", "resources": "cpus:1"})
    assert status == 400 and "db//x" in body["error"]
    status, body = post(master, "/unreserve", {"agent_id": agent_id, "role": "db", "resources": "cpus:1;mem:128"})
    assert status == 200, body
    status, body = post(master, "/unreserve", {"agent_id": agent_id, "role": "db", "resources": "cpus:1"})
    assert status == 409
