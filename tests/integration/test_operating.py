"""Operating a real cluster: the operator event stream, /metrics of both daemons read
with prometheus_client's parser and checked against /state, completed frameworks and
tasks (with their history, sandbox and counters) in /state, and every operator command
of the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import corral
from corral.testing.cluster import LocalCluster, get_json, wait_for

from support import EventReader, RecordingScheduler, start_driver

pytestmark = pytest.mark.slow


def corral_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def metrics(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A daemon's /metrics, parsed: (sample name, labels) -> value."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def framework(cluster: LocalCluster) -> Iterator[tuple[RecordingScheduler, corral.SchedulerDriver]]:
    scheduler = RecordingScheduler([("long", "echo started-long; sleep 600")])
    driver = start_driver(scheduler, cluster, "operating")
    assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states("long")), scheduler
    yield scheduler, driver
    driver.stop()


def test_the_event_stream_starts_with_the_state_and_follows_tasks(cluster: LocalCluster, framework) -> None:
    scheduler, _driver = framework
    reader = EventReader(cluster.master_address)
    try:
        first_name, first = reader.wait(lambda events: events and events[0])
        assert first_name == "SUBSCRIBED"
        assert {a["id"] for a in first["state"]["agents"]} == {a["id"] for a in cluster.state()["agents"]}
        task_id = f"streamed-{uuid.uuid4().hex[:6]}"
        scheduler.pending.append((task_id, "while [ ! -e go ]; do sleep 0.05; done"))

        def seen(kind: str, state: str | None = None):
            def check(events):
                for name, data in events:
                    if name == kind == "TASK_ADDED" and any(t["id"] == task_id for t in data["tasks"]):
                        return True
                    if name == kind == "TASK_UPDATED" and [task_id, state, None] in data["tasks"]:
                        return data["framework_id"] == scheduler.framework_id
                return False
            return check

        reader.wait(seen("TASK_ADDED"))
        assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states(task_id)), scheduler
        sandbox = get_json(cluster.master_address, f"/task?task_id={task_id}")["sandbox"]
        next(a.work_dir / "sandboxes" / sandbox for a in cluster.agents
             if (a.work_dir / "sandboxes" / sandbox).is_dir()).joinpath("go").touch()
        reader.wait(seen("TASK_UPDATED", "TASK_FINISHED"))
        reader.wait(lambda events: any(n == "HEARTBEAT" for n, _ in events))
        added = next(d for n, d in reader.events if n == "TASK_ADDED" and d["tasks"][0]["id"] == task_id)["tasks"][0]
        assert added["framework_id"] == scheduler.framework_id and added["resources"]["cpus"] == 0.1
    finally:
        reader.close()


def test_the_event_stream_reports_frameworks_coming_and_going(cluster: LocalCluster) -> None:
    reader = EventReader(cluster.master_address)
    try:
        reader.wait(lambda events: events)
        scheduler = RecordingScheduler([])
        driver = start_driver(scheduler, cluster, "short-lived")
        assert scheduler.registered_event.wait(10)
        reader.wait(lambda events: any(n == "FRAMEWORK_ADDED" and d["framework"]["name"] == "short-lived"
                                       for n, d in events))
        driver.stop()
        removed = reader.wait(lambda events: next((d for n, d in events if n == "FRAMEWORK_REMOVED"
                                                   and d["framework"]["id"] == scheduler.framework_id), None))
        assert removed["framework"]["unregistered_time"] > 0
    finally:
        reader.close()


def test_prometheus_metrics_of_master_and_agent_match_the_state(cluster: LocalCluster, framework) -> None:
    state = cluster.state()
    master = metrics(cluster.master_address)
    running = sum(1 for f in state["frameworks"] for t in f["tasks"] if t["state"] == "TASK_RUNNING")
    assert master[("corral_master_tasks", (("state", "running"),))] == running
    registered = sum(1 for a in state["agents"] if a["state"] == "registered")
    assert master[("corral_master_agents", (("state", "registered"),))] == registered
    assert master[("corral_master_frameworks", (("state", "active"),))] == len(state["frameworks"])
    for kind, key in (("total", "resources"), ("used", "used_resources")):
        expected = sum(a[key].get("cpus", 0.0) for a in state["agents"])
        assert master[("corral_master_resources", (("resource", "cpus"), ("type", kind)))] == pytest.approx(expected)
    assert master[("corral_master_elected", ())] == 1
    assert master[("corral_master_uptime_seconds", ())] > 0
    assert master[("corral_master_tasks_launched_total", ())] >= 1
    assert ("corral_transport_malformed_total", ()) in master
    assert ("corral_transport_undecodable_total", ()) in master
    assert master[("corral_master_allocation_cycle_seconds_count", ())] >= 1
    assert master[("corral_master_status_update_relay_seconds_count", ())] >= 1  # (the first message is sampled)
    assert master[("corral_master_status_update_relay_seconds_sum", ())] < 60
    assert ("corral_master_reconcile_calls_total", ()) in master

    agent_state = get_json(cluster.agents[0].address, "/state")
    agent = metrics(cluster.agents[0].address)
    assert agent[("corral_agent_registered", ())] == 1
    assert agent[("corral_agent_executors", ())] == len(agent_state["executors"])
    assert agent[("corral_agent_resources", (("resource", "cpus"), ("type", "total")))] == 2
    assert ("corral_transport_malformed_total", ()) in agent


def test_a_completed_framework_and_its_tasks_stay_in_the_state(cluster: LocalCluster) -> None:
    before = cluster.state()["task_counters"]
    scheduler = RecordingScheduler([("done", "echo done-output"), ("failing", "exit 7"), ("left-running", "sleep 600")])
    driver = start_driver(scheduler, cluster, "completing")
    assert scheduler.wait_terminal(["done", "failing"]), scheduler
    assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states("left-running")), scheduler
    fid = scheduler.framework_id
    driver.stop()  # tears the framework down: its running task is killed

    def completed() -> dict | None:
        return next((f for f in cluster.state()["completed_frameworks"] if f["id"] == fid), None)

    fw = wait_for(completed, 10, "the framework among the completed ones")
    tasks = {t["id"]: t for t in fw["tasks"] + fw["completed_tasks"]}
    assert tasks["done"]["state"] == "TASK_FINISHED"
    assert tasks["failing"]["state"] == "TASK_FAILED"
    assert tasks["left-running"]["state"] == "TASK_KILLED"
    assert [s["state"] for s in tasks["done"]["statuses"]] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert tasks["failing"]["statuses"][-1]["message"] == "Command exited with status 7"
    assert tasks["left-running"]["statuses"][-1]["reason"] == "REASON_FRAMEWORK_REMOVED"
    assert tasks["done"]["sandbox"].startswith(f"{fid}/done/")
    assert any((a.work_dir / "sandboxes" / tasks["done"]["sandbox"] / "stdout").read_text() == "done-output\n"
               for a in cluster.agents if (a.work_dir / "sandboxes" / tasks["done"]["sandbox"]).exists())
    after = cluster.state()["task_counters"]
    assert after["TASK_FINISHED"] >= before["TASK_FINISHED"] + 1
    assert after["TASK_FAILED"] >= before["TASK_FAILED"] + 1
    assert after["TASK_KILLED"] >= before["TASK_KILLED"] + 1
    assert fw["counters"]["status_updates"] >= 7 and fw["counters"]["acknowledgements"] >= 7


def test_the_agent_answers_its_flags(cluster: LocalCluster) -> None:
    flags = get_json(cluster.agents[0].address, "/flags")
    assert flags["resources"].startswith("cpus:2")
    assert os.path.isabs(flags["work_dir"])


# ------------------------------------------------------------------ the CLI
def test_cli_lists_agents_frameworks_and_tasks(cluster: LocalCluster, framework) -> None:
    scheduler, _driver = framework
    out = corral_cli("agents", "--master", cluster.master_address)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "HOST", "STATE", "CPUS", "MEM", "DISK", "TASKS"]
    assert len(lines) == 1 + len(cluster.agents)
    assert all("registered" in line for line in lines[1:])
    listed = json.loads(corral_cli("agents", "--master", cluster.master_address, "--json").stdout)
    assert {a["id"] for a in listed} == {a["id"] for a in cluster.state()["agents"]}

    env = dict(os.environ, CORRAL_MASTER=cluster.master_address)
    out = corral_cli("frameworks", env=env)
    assert out.returncode == 0, out.stderr
    assert any(line.startswith(scheduler.framework_id) and "operating" in line for line in out.stdout.splitlines())

    out = corral_cli("tasks", "--framework", scheduler.framework_id, "--state", "running", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert "long" in {t["id"] for t in json.loads(out.stdout)}
    assert all(t["state"] == "TASK_RUNNING" for t in json.loads(out.stdout))
    out = corral_cli("tasks", "--state", "bogus", env=env)
    assert out.returncode == 1 and "invalid state 'bogus'" in out.stderr


def test_cli_task_logs_tail_and_follow(cluster: LocalCluster, framework) -> None:
    scheduler, _driver = framework
    task_id = f"talker-{uuid.uuid4().hex[:6]}"
    scheduler.pending.append((task_id, "for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; "
                                       "while [ ! -e go ]; do sleep 0.05; done; echo last-line"))
    assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states(task_id)), scheduler
    env = dict(os.environ, CORRAL_MASTER=cluster.master_address)
    task = get_json(cluster.master_address, f"/task?task_id={task_id}")
    wait_for(lambda: "line-5" in corral_cli("task", "logs", task_id, env=env).stdout, 10, "the first lines")
    assert corral_cli("task", "logs", task_id, "--tail", "2", env=env).stdout == "line-4\nline-5\n"
    assert corral_cli("task", "logs", task_id, "--stderr", env=env).stdout == "oops\n"
    follower = subprocess.Popen([sys.executable, "-m", "corral", "task", "logs", task_id, "--follow", "--tail", "1"],
                                stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert follower.stdout is not None and follower.stdout.readline() == "line-5\n"
        sandbox = next(a.work_dir / "sandboxes" / task["sandbox"] for a in cluster.agents
                       if (a.work_dir / "sandboxes" / task["sandbox"]).is_dir())
        (sandbox / "go").touch()
        assert follower.stdout.readline() == "last-line\n"
        assert follower.wait(15) == 0  # the task ended: --follow ends too
    finally:
        follower.kill()


def test_cli_kills_a_task_and_tears_a_framework_down(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([("victim", "sleep 600"), ("bystander", "sleep 600")])
    driver = start_driver(scheduler, cluster, "to-tear-down")
    try:
        assert scheduler.wait(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in ("victim", "bystander")))
        out = corral_cli("task", "kill", "victim", "--framework", scheduler.framework_id, "--master",
                         cluster.master_address)
        assert out.returncode == 0, out.stderr
        assert scheduler.wait(lambda: "TASK_KILLED" in scheduler.states("victim")), scheduler
        out = corral_cli("task", "kill", "no-such-task", "--master", cluster.master_address)
        assert out.returncode == 1 and "no task 'no-such-task'" in out.stderr
        out = corral_cli("framework", "teardown", scheduler.framework_id, "--master", cluster.master_address)
        assert out.returncode == 0, out.stderr
        assert scheduler.wait(lambda: scheduler.errors), scheduler  # the scheduler is told
        wait_for(lambda: any(f["id"] == scheduler.framework_id for f in cluster.state()["completed_frameworks"]),
                 10, "the framework completed")
        out = corral_cli("framework", "teardown", scheduler.framework_id, "--master", cluster.master_address)
        assert out.returncode == 1 and "unknown framework" in out.stderr
    finally:
        driver.stop()


def test_cli_says_when_the_master_cannot_be_reached() -> None:
    out = corral_cli("tasks", "--master", "127.0.0.1:1")
    assert out.returncode == 1
    assert "cannot reach the master at 127.0.0.1:1" in out.stderr
    assert "Traceback" not in out.stderr
    out = corral_cli("agents", env={k: v for k, v in os.environ.items() if k != "CORRAL_MASTER"})
    assert out.returncode == 2 and "CORRAL_MASTER" in out.stderr
