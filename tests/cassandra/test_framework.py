"""The framework on a real local cluster of 4 agents: deploy, heal, update, scale,
uninstall, and the scheduler's failover. Every node, agent and scheduler is a real
process; failures are SIGKILLs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from corral.examples.cassandra.client import Client
from corral.examples.cassandra.testing import LocalService
from corral.testing.cluster import wait_for

pytestmark = pytest.mark.slow

KEYS = [b"key-%05d" % i for i in range(10_000)]


def value(key: bytes, version: int = 0) -> bytes:
    return key + b"-v%d" % version


def write_all(service: LocalService, version: int = 0) -> None:
    with Client(service.endpoints()) as client:
        assert client.put_many([(k, value(k, version)) for k in KEYS]) == [None] * len(KEYS)


def assert_all_read(service: LocalService, version: int = 0, consistency: str = "ALL") -> None:
    with Client(service.endpoints()) as client:
        values = client.get_many(KEYS, consistency=consistency)
    wrong = [k for k, v in zip(KEYS, values) if v != value(k, version)]
    assert not wrong, f"{len(wrong)} keys read back wrong at {consistency}, e.g. {wrong[:3]}: {values[:1]}"


def cli(service: LocalService, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.examples.cassandra", args[0], "--api", service.api, *args[1:]],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def service(tmp_path):
    with LocalService(tmp_path, scheduler_flags=["--permanent-failure-timeout", "3"]) as s:
        yield s
        pids = [p["pid"] for p in (s.request("GET", "/v1/pod/status") or []) if p["pid"] and p["up"]]
    # the scheduler stopped with failover (the nodes kept running), then every agent
    # stopped: each took its node down with it, none is left behind
    for pid in pids:
        wait_for(lambda: not _alive(pid), 15, f"node process {pid} to be gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_deploy_then_heal_a_killed_node_in_place_and_replace_a_node_whose_agent_stays_down(service):
    service.wait_plan("deploy")
    pods = {name: service.pod(name) for name in ("node-0", "node-1", "node-2")}
    assert len({p["agent_id"] for p in pods.values()}) == 3  # one node per agent
    reserved = service.reservations()
    assert sorted(reserved) == sorted(p["agent_id"] for p in pods.values())
    assert sorted(v for r in reserved.values() for v in r["volumes"]) == sorted(p["volume_id"] for p in pods.values())
    write_all(service)

    # the node's process dies: relaunched on the same agent, reservation and volume
    before = service.pod("node-1")
    os.kill(before["pid"], signal.SIGKILL)
    wait_for(lambda: service.pod("node-1")["task_id"] != before["task_id"] and service.pod("node-1")["up"], 60,
             "node-1 relaunched and up")
    after = service.pod("node-1")
    assert (after["agent_id"], after["volume_id"], after["address"]) == \
        (before["agent_id"], before["volume_id"], before["address"])
    assert_all_read(service)

    # its agent dies and stays down: replaced on the fourth agent, streaming the data
    victim = service.pod("node-2")
    agent = service.agent_of(victim["agent_id"])
    agent.kill()
    wait_for(lambda: service.pod("node-2")["agent_id"] not in (None, victim["agent_id"]), 60, "node-2 replaced")
    service.wait_plan("deploy", timeout=90)
    replaced = service.pod("node-2")
    assert replaced["replacements"] == 1 and replaced["volume_id"] != victim["volume_id"]
    assert replaced["agent_id"] not in {p["agent_id"] for p in pods.values()}
    assert_all_read(service)

    # the old agent comes back: its reservation and volume are given back
    agent.start()
    wait_for(lambda: victim["agent_id"] not in service.reservations(), 60, "the old reservation released")
    assert sorted(service.reservations()) == sorted(service.pod(n)["agent_id"] for n in ("node-0", "node-1", "node-2"))
    volumes = agent.work_dir / "volumes" / "roles" / "cassandra"
    wait_for(lambda: not any(volumes.glob("*")), 30, "the old volume's directory deleted on its agent")


def test_a_rolling_update_of_settings_and_resources_under_quorum_writes_loses_and_fails_none(service):
    service.wait_plan("deploy")
    nodes = ("node-0", "node-1", "node-2")
    placed = {n: (service.pod(n)["agent_id"], service.pod(n)["volume_id"]) for n in nodes}
    assert {r["scalars"]["cpus"] for r in service.reservations().values()} == {0.5}
    endpoints = service.endpoints()
    acked: dict[bytes, int] = {}
    failures: list[object] = []
    stop = threading.Event()

    def writer() -> None:
        with Client(endpoints, attempts=6) as client:
            round_ = 0
            while not stop.is_set():
                batch = [(b"roll-%04d" % i, b"%d" % round_) for i in range(200)]
                for (key, v), error in zip(batch, client.put_many(batch, window=32)):
                    if error is None:
                        acked[key] = round_
                    else:
                        failures.append(error)
                round_ += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        config_before = service.request("GET", "/v1/config")["config_id"]
        tasks_before = {n: service.pod(n)["task_id"] for n in nodes}
        # more cpus (reserved on each agent before its node restarts), less memory (given back)
        reply = service.request("PUT", "/v1/config", {"write_timeout": 3.0, "hinted_handoff": True,
                                                      "node_resources": "cpus:0.6;mem:200;disk:256"})
        assert reply["config_id"] != config_before
        wait_for(lambda: service.plan_status() != "COMPLETE", 30, "the update to start")
        service.wait_plan("deploy", timeout=120)
    finally:
        stop.set()
        thread.join(60)
    assert not failures, failures[:3]
    assert all(service.pod(n)["task_id"] != tasks_before[n] for n in tasks_before)  # each node restarted
    assert all(service.pod(n)["config_id"] == reply["config_id"] for n in tasks_before)
    with Client(endpoints) as client:
        values = client.get_many(list(acked), consistency="QUORUM")
    lost = [k for k, v in zip(acked, values) if v is None or int(v) < acked[k]]
    assert not lost, f"{len(lost)} acknowledged writes lost"
    # each node restarted in place, on its volume, with exactly the new reservation
    assert {n: (service.pod(n)["agent_id"], service.pod(n)["volume_id"]) for n in nodes} == placed
    reserved = service.reservations()
    assert sorted(reserved) == sorted(agent for agent, _ in placed.values())
    assert all(r["scalars"] == {"cpus": 0.6, "mem": 200.0} for r in reserved.values()), reserved
    assert {t["resources"]["cpus"] for t in service.tasks()} == {0.6}

    # more than an agent has: the first node's step says so, and no node goes down for it
    tasks = {n: service.pod(n)["task_id"] for n in nodes}
    grown = service.request("PUT", "/v1/config", {"node_resources": "cpus:5;mem:200;disk:256"})
    wait_for(lambda: "lacks cpus:4.4" in service.request("GET", "/v1/plans/deploy")["phases"][0]["steps"][0][
        "message"], 30, "the shortfall reported")
    assert {n: service.pod(n)["task_id"] for n in nodes} == tasks and service.plan_status() != "COMPLETE"
    # back to what the nodes run: complete again at once, nothing restarted or left reserved
    back = service.request("PUT", "/v1/config", {"node_resources": "cpus:0.6;mem:200;disk:256"})
    assert back["config_id"] == reply["config_id"] != grown["config_id"]
    service.wait_plan("deploy", timeout=30)
    assert {n: service.pod(n)["task_id"] for n in nodes} == tasks
    assert all(r["scalars"] == {"cpus": 0.6, "mem": 200.0} for r in service.reservations().values())


def test_the_scheduler_killed_mid_deploy_keeps_the_operators_interrupt_and_finishes_with_no_duplicate_or_leak(
        service):
    wait_for(lambda: (service.pod("node-1") or {}).get("task_id"), 60, "node-1 launched")
    assert cli(service, "plan", "interrupt", "deploy").stdout.strip() == "plan deploy interrupted"
    service.kill_scheduler()
    tasks_before = {t["id"] for t in service.tasks()}
    service.start_scheduler()
    # the override survived the restart: the step under way finishes, no new one starts
    wait_for(lambda: service.request("GET", "/v1/plans/deploy")["phases"][0]["steps"][1]["status"] == "COMPLETE",
             60, "node-1 complete")
    assert service.plan_status() == "WAITING" and service.pod("node-2")["task_id"] is None
    shown = cli(service, "plan", "status")
    assert "deploy (serial strategy) (WAITING)" in shown.stdout and "node-2 (PENDING)" in shown.stdout
    assert cli(service, "plan", "continue", "deploy").returncode == 0
    service.wait_plan("deploy")
    tasks = service.tasks()
    assert len(tasks) == 3 and len({t["agent_id"] for t in tasks}) == 3
    assert {t["id"] for t in tasks} >= tasks_before  # nothing relaunched
    reserved = service.reservations()
    pods = [service.pod(n) for n in ("node-0", "node-1", "node-2")]
    assert sorted(reserved) == sorted(p["agent_id"] for p in pods)
    assert sorted(v for r in reserved.values() for v in r["volumes"]) == sorted(p["volume_id"] for p in pods)
    # and once deployed, a failover changes nothing
    service.kill_scheduler()
    service.start_scheduler()
    service.wait_plan("deploy")
    assert {t["id"] for t in service.tasks()} == {t["id"] for t in tasks}


def test_scale_up_and_down_keeps_every_key_then_uninstall_leaves_nothing(service):
    service.wait_plan("deploy")
    # bad input first: clear errors, nothing changes
    below = cli(service, "scale", "2")
    assert below.returncode == 1 and "replication factor is 3" in below.stderr
    unknown = cli(service, "pod", "restart", "node-9")
    assert unknown.returncode == 1 and "unknown pod 'node-9'" in unknown.stderr
    bad = cli(service, "config", "update", "write_timeout=soon")
    assert bad.returncode == 1 and "invalid value 'soon' for write_timeout" in bad.stderr
    assert "cannot change replication" in service.request("PUT", "/v1/config", {"replication": 5})["error"]
    resize = cli(service, "config", "update", "node_resources=cpus:0.5;mem:256;disk:1024")
    assert resize.returncode == 1 and "cannot change the nodes' disk from 256 to 1024 MB" in resize.stderr
    ports = service.request("PUT", "/v1/config", {"node_resources": "cpus:1;mem:256;disk:256;ports:[80-80]"})
    assert ports["status"] == 400 and "ports is not a scalar" in ports["error"]
    assert service.request("PUT", "/v1/config", "not an object")["status"] == 400
    assert cli(service, "pod", "list").stdout.split() == ["node-0", "node-1", "node-2"]
    assert service.plan_status() == "COMPLETE"
    write_all(service, version=1)

    assert cli(service, "scale", "4").returncode == 0
    service.wait_plan("deploy")
    assert len(cli(service, "endpoints").stdout.split()) == 4
    assert_all_read(service, version=1, consistency="QUORUM")
    assert cli(service, "scale", "3").returncode == 0
    service.wait_plan("decommission")
    wait_for(lambda: service.request("GET", "/v1/pod") == ["node-0", "node-1", "node-2"], 60, "node-3 gone")
    assert_all_read(service, version=1, consistency="ALL")
    wait_for(lambda: len(service.reservations()) == 3, 30, "node-3's reservation released")

    done = cli(service, "uninstall")
    assert done.returncode == 0 and "uninstalled" in done.stdout
    wait_for(lambda: service.scheduler.poll() is not None, 60, "the scheduler to exit")
    assert service.scheduler.returncode == 0
    assert service.reservations() == {}
    assert service.tasks() == []
    assert not any(f["active"] for f in service.cluster.state()["frameworks"])
    for agent in service.cluster.agents:
        volumes = agent.work_dir / "volumes" / "roles" / "cassandra"
        wait_for(lambda: not any(volumes.glob("*")), 30, f"no volume left on {agent.name}")
