"""Real processes with a real ZooKeeper: what the registry keeps (role weights, quota,
agents marked gone) survives two failovers; garbage in the lowest contender znode and
in a registry znode is logged, naming it, and skipped; standbys redirect operator calls;
the CLI follows the leader through the zk:// URL."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from kazoo.client import KazooClient

from corral.testing.cluster import Daemon, LocalCluster, get_json, wait_for

SESSION_TIMEOUT = 4.0


def post(address: str, path: str, body: object) -> dict:
    request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def registry_view(leader: Daemon) -> tuple[dict, dict, list]:
    weights = {w["role"]: w["weight"] for w in get_json(leader.address, "/weights")["weights"]}
    quotas = {q["role"]: q["limit"] for q in get_json(leader.address, "/quota")["quotas"]}
    return weights, quotas, get_json(leader.address, "/state")["gone_agents"]


def registered(leader: Daemon) -> list[str]:
    return sorted(a["id"] for a in get_json(leader.address, "/state")["agents"] if a["state"] == "registered")


def test_the_registry_survives_two_failovers_and_garbage_is_skipped(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", agents=2, masters=3, zk_session_timeout=SESSION_TIMEOUT)
    assert cluster.zookeeper is not None
    cluster.zookeeper.start()
    kz = KazooClient(hosts=cluster.zookeeper.connect_string, timeout=10.0)
    kz.start(timeout=30)
    try:
        # some tool left garbage as the lowest contender: it leads nobody
        garbage = kz.create("/corral/json.info_", b"\x00 not a MasterInfo", sequence=True, makepath=True)
        cluster.start()
        first = cluster.wait_leader()
        assert first is cluster.masters[0]
        assert all(f"{garbage} does not hold a JSON MasterInfo" in m.log_tail(200) for m in cluster.masters)

        post(first.address, "/weights", [{"role": "web", "weight": 2.5}])
        post(first.address, "/quota", {"role": "web", "limit": "cpus:1;mem:256"})
        agent_ids = {get_json(a.address, "/state")["id"]: a for a in cluster.agents}
        gone = get_json(cluster.agents[1].address, "/state")["id"]
        (kept,) = set(agent_ids) - {gone}
        assert post(first.address, "/agents/gone", {"agent_id": gone})["gone"]
        cluster.agents[1].kill()
        expected = ({"web": 2.5}, {"web": "cpus:1;mem:256"}, [gone])
        assert registry_view(first) == expected

        # a standby sends operator calls to the leader
        standby = next(m for m in cluster.masters if m is not first)
        try:
            post(standby.address, "/weights", [{"role": "web", "weight": 9.0}])
            raise AssertionError("a standby took an operator call")
        except urllib.error.HTTPError as redirect:
            assert redirect.code == 307 and redirect.headers["Location"] == f"http://{first.address}/weights"

        # failover 1: the registry is read by the next master
        first.kill()
        second = cluster.wait_leader(timeout=60, other_than=first)
        assert registry_view(second) == expected
        wait_for(lambda: registered(second) == [kept], 60, "the agent that is not gone to reregister")
        first.start()  # back as a standby

        # failover 2, with garbage in a registry znode: logged, skipped, the rest read
        kz.create("/corral/registry/agents/zzz", b"\xc1 not msgpack")
        second.kill()
        third = cluster.wait_leader(timeout=60, other_than=second)
        assert registry_view(third) == expected
        wait_for(lambda: registered(third) == [kept], 60, "the agent that is not gone to reregister")
        assert "/corral/registry/agents/zzz holds unreadable data" in third.log_tail(400)

        # every CLI command takes the zk:// URL
        done = subprocess.run([sys.executable, "-m", "corral", "execute", "--master", cluster.master_url,
                               "--command", "true", "--timeout", "60"], capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "TASK_FINISHED" in done.stdout
    finally:
        kz.stop()
        cluster.stop()
