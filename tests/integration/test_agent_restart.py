"""Real processes: an agent SIGKILLed while a checkpointing framework's tasks run and
their updates flow, then restarted on the same work dir: recovery with reconnecting
executors, `--recover cleanup`, a new boot id (a rebooted machine: a fresh agent), and
a task's sandbox still found through a new master after the agent recovered."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Iterator

import pytest

import corral
from corral.agent.checkpoint import Checkpointer, process_stamp
from corral.testing.cluster import LocalCluster, get_json, wait_for

from support import RecordingScheduler

LONG = ["long-0", "long-1"]
SHORT = ["short-0", "short-1", "short-2"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster", agents=1) as c:
        yield c


def start_checkpointing(cluster: LocalCluster, scheduler: RecordingScheduler) -> corral.SchedulerDriver:
    info = corral.FrameworkInfo(name="checkpointing", user="", checkpoint=True)
    driver = corral.SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    return driver


def task_pid(scheduler: RecordingScheduler, task_id: str) -> int:
    """The task's process id, as its RUNNING update reports it ("pid N")."""
    (running,) = [u for u in scheduler.updates if u.task_id.value == task_id and u.state == corral.TASK_RUNNING]
    return int(running.message.split()[1])


def alive(pid: int) -> bool:
    return process_stamp(pid) is not None


def agent_state(cluster: LocalCluster) -> dict:
    return get_json(cluster.agents[0].address, "/state")


def executor_updates(scheduler: RecordingScheduler) -> list[corral.TaskStatus]:
    """The updates that carry a uuid (not master-generated reconciliation answers)."""
    return [u for u in scheduler.updates if u.uuid]


def wait_running(scheduler: RecordingScheduler, task_ids: list[str]) -> None:
    assert scheduler.wait(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in task_ids), 30), \
        [(t, scheduler.states(t)) for t in task_ids]


def test_restarted_agent_recovers_executors_and_loses_no_update(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([(t, "sleep 60") for t in LONG] + [(t, "sleep 2") for t in SHORT])
    driver = start_checkpointing(cluster, scheduler)
    try:
        wait_running(scheduler, LONG + SHORT)
        agent_id = agent_state(cluster)["id"]
        pids = {t: task_pid(scheduler, t) for t in LONG + SHORT}

        cluster.agents[0].kill()
        # the short tasks finish while the agent is down: their executors hold TASK_FINISHED
        wait_for(lambda: not any(alive(pids[t]) for t in SHORT), 20, "the short tasks to end")
        assert all(alive(pids[t]) for t in LONG)
        cluster.agents[0].start()

        assert scheduler.wait_terminal(SHORT, 30), [(t, scheduler.states(t)) for t in SHORT]
        state = wait_for(lambda: (s := agent_state(cluster))["connection"] == "registered" and s, 20,
                         "the agent to reregister")
        assert state["id"] == agent_id
        assert state["counters"]["executors_reregistered"] >= len(LONG)
        assert {t["id"]: t["state"] for t in state["tasks"] if t["id"] in LONG} == dict.fromkeys(LONG, "TASK_RUNNING")
        for t in SHORT:
            assert scheduler.states(t) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        for t in LONG:  # never relaunched: one STARTING, one RUNNING, the same process
            assert scheduler.states(t) == ["TASK_STARTING", "TASK_RUNNING"]
            assert alive(pids[t])
        uuids = [u.uuid for u in executor_updates(scheduler)]
        assert len(uuids) == len(set(uuids)) == 3 * len(SHORT) + 2 * len(LONG)

        # the recovered executors still obey
        for t in LONG:
            driver.kill_task(corral.TaskID(value=t))
        assert scheduler.wait_terminal(LONG, 30)
        for t in LONG:
            assert scheduler.states(t)[-1] == "TASK_KILLED"
        wait_for(lambda: not any(alive(pids[t]) for t in LONG), 20, "the long tasks to end")
        wait_for(lambda: not agent_state(cluster)["executors"], 20, "the recovered executors to exit")
        # every run is over and its updates acknowledged: no checkpoint of a run is left
        # (those of the short tasks went after the restart, the long ones' after the kill)
        checkpoints = Checkpointer(cluster.agents[0].work_dir)
        wait_for(lambda: checkpoints.read().runs == [], 20, "the finished runs' checkpoints to go")
        assert checkpoints.read().frameworks  # the framework's own stays while it is registered
    finally:
        driver.stop()


def task_view(cluster: LocalCluster, task_id: str) -> dict | None:
    """The master's /task of `task_id`; None while the master does not know it."""
    try:
        return get_json(cluster.master_address, f"/task?task_id={task_id}")
    except (urllib.error.URLError, ConnectionError):
        return None


def test_a_tasks_sandbox_is_found_after_agent_recovery_through_a_new_master(cluster: LocalCluster) -> None:
    """The agent names a task's executor run (its sandbox) to the master once, at launch;
    no update carries it. The agent is SIGKILLed, the master restarted while it is down
    (a new master process: it knows the task only from the agent's report), and the
    agent restarted to recover from its checkpoints: /task names the same sandbox and
    `corral task logs` reads what the task printed."""
    scheduler = RecordingScheduler([("talker", "echo said-before; sleep 60")])
    info = corral.FrameworkInfo(name="checkpointing", user="", checkpoint=True, failover_timeout=120.0)
    driver = corral.SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    try:
        wait_running(scheduler, ["talker"])
        before = task_view(cluster, "talker")
        assert before is not None and before["sandbox"], before
        stdout = cluster.agents[0].work_dir / "sandboxes" / before["sandbox"] / "stdout"
        wait_for(lambda: stdout.is_file() and stdout.read_text() == "said-before\n", 10, "the task's output")
        container_id = before["sandbox"].rsplit("/", 1)[1].encode()
        assert not any(container_id in u.SerializeToString() for u in scheduler.updates)
        pid = task_pid(scheduler, "talker")

        cluster.agents[0].kill()
        cluster.master.kill()
        cluster.master.start()
        cluster.agents[0].start()
        after = wait_for(lambda: (v := task_view(cluster, "talker")) and v["sandbox"] and v, 30,
                         "the new master to learn the task and its sandbox from the recovered agent")
        assert (after["agent_id"], after["executor_id"], after["sandbox"], after["state"]) == (
            before["agent_id"], before["executor_id"], before["sandbox"], "TASK_RUNNING")
        assert alive(pid)  # recovered, not relaunched
        logs = subprocess.run([sys.executable, "-m", "corral", "task", "logs", "talker"], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, CORRAL_MASTER=cluster.master_address))
        assert (logs.returncode, logs.stdout) == (0, "said-before\n"), logs.stderr
    finally:
        driver.stop()


def test_recover_cleanup_kills_recovered_executors(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([(t, "sleep 60") for t in LONG])
    driver = start_checkpointing(cluster, scheduler)
    try:
        wait_running(scheduler, LONG)
        pids = {t: task_pid(scheduler, t) for t in LONG}
        agent = cluster.agents[0]
        agent.kill()
        agent.argv += ["--recover", "cleanup"]
        agent.start()
        assert scheduler.wait_terminal(LONG, 30)
        for t in LONG:
            (failed,) = [u for u in scheduler.updates if u.task_id.value == t and u.state == corral.TASK_FAILED]
            assert failed.reason == corral.TaskStatus.REASON_AGENT_RESTARTED
            assert failed.source == corral.TaskStatus.SOURCE_AGENT
        wait_for(lambda: not any(alive(p) for p in pids.values()), 20, "the tasks' processes to be killed")
        wait_for(lambda: not agent_state(cluster)["executors"], 20, "the executors to be gone")
    finally:
        driver.stop()


def test_new_boot_id_means_a_fresh_agent(cluster: LocalCluster, tmp_path: Path) -> None:
    scheduler = RecordingScheduler([("long-0", "sleep 60")])
    driver = start_checkpointing(cluster, scheduler)
    agent = cluster.agents[0]
    leftovers: list[int] = []
    try:
        wait_running(scheduler, ["long-0"])
        old_id = agent_state(cluster)["id"]
        state = Checkpointer(agent.work_dir).read()
        leftovers = [task_pid(scheduler, "long-0")] + [run.pid for run in state.runs]
        agent.kill()
        boot_id = tmp_path / "boot_id"
        boot_id.write_text("00000000-0000-4000-8000-000000000000\n")  # as after a reboot
        agent.argv += ["--boot-id-file", str(boot_id)]
        agent.start()
        fresh = wait_for(lambda: (s := agent_state(cluster))["connection"] == "registered" and s, 20,
                         "the fresh agent to register")
        # a new agent, with a new id; the old one is gone, and so are its tasks
        assert fresh["id"] != old_id
        assert scheduler.wait(lambda: scheduler.states("long-0")[-1:] == ["TASK_LOST"], timeout=20)
        assert scheduler.updates[-1].reason == corral.TaskStatus.REASON_AGENT_RESTARTED
        assert fresh["counters"]["executors_recovered"] == 0
        assert fresh["tasks"] == [] and fresh["executors"] == [] and fresh["frameworks"] == []
        assert not Checkpointer(agent.work_dir).exists()
        assert all(alive(p) for p in leftovers)  # a real reboot would have ended them; nobody adopted them
    finally:
        driver.stop()
        for pid in leftovers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
