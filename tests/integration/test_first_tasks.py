"""The foundation, end to end with real processes: tasks launched through the master
run as real processes on agents, and their status updates come back acknowledged."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import zmq

import corral
from corral.engines.scheduler import SchedulerConfig
from corral.net.protocol import MessageType
from corral.protos import corral_pb2 as pb
from corral.testing.cluster import LocalCluster, get_json, wait_for
from corral._core.envelope import encode

from support import RecordingScheduler, start_driver


def corral_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=timeout)


def test_execute_echo_finishes_and_exits_zero(cluster: LocalCluster) -> None:
    result = corral_cli("execute", "--master", cluster.master_address, "--command", "echo hello")
    assert result.returncode == 0, result.stderr
    assert "TASK_FINISHED" in result.stdout
    assert result.stdout.index("TASK_RUNNING") < result.stdout.index("TASK_FINISHED")


def test_execute_exit_3_fails_and_exits_nonzero(cluster: LocalCluster) -> None:
    result = corral_cli("execute", "--master", cluster.master_address, "--command", "exit 3")
    assert result.returncode != 0
    assert "TASK_FAILED" in result.stdout
    assert "status 3" in result.stdout


def test_tasks_run_as_real_processes_and_updates_arrive_once_in_order(cluster: LocalCluster, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    marker.mkdir()
    tasks = [(f"t{i}", f"echo $$ > {marker}/t{i}; echo out-{i}") for i in range(6)]
    scheduler = RecordingScheduler(tasks)
    driver = start_driver(scheduler, cluster, "ordered")
    try:
        assert scheduler.wait_terminal([t for t, _ in tasks])
        for task_id, _ in tasks:
            assert scheduler.states(task_id) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
            pid = int((marker / task_id).read_text())
            assert pid != os.getpid()
        uuids = [u.uuid for u in scheduler.updates]
        assert len(uuids) == len(set(uuids)) == 18
        # every update acknowledged: the master forgets finished tasks, agents hold nothing
        # (the master forgets a task as it relays the terminal ack, so the agent may
        # still be waiting for that ack when the master has already forgotten)
        wait_for(lambda: all(not f["tasks"] for f in cluster.state()["frameworks"]
                             if f["id"] == scheduler.framework_id), 10, "tasks forgotten after acks")
        wait_for(lambda: all(get_json(agent.address, "/state")["pending_status_updates"] == 0
                             for agent in cluster.agents), 10, "agents hold no update")
    finally:
        driver.stop()


def test_task_output_lands_in_its_sandbox(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([("sandboxed", "echo written-by-the-task")])
    driver = start_driver(scheduler, cluster, "sandbox")
    try:
        assert scheduler.wait_terminal(["sandboxed"])
        outputs = list(cluster.work_dir.glob("agent-*/sandboxes/*/sandboxed/*/stdout"))
        assert outputs, "no sandbox for the task"
        assert any("written-by-the-task" in p.read_text() for p in outputs)
    finally:
        driver.stop()


def test_kill_task_ends_running_task_as_killed(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([("sleeper", "sleep 60")])
    driver = start_driver(scheduler, cluster, "killer")
    try:
        assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states("sleeper"))
        driver.kill_task(corral.TaskID(value="sleeper"))
        assert scheduler.wait_terminal(["sleeper"])
        assert scheduler.states("sleeper")[-1] == "TASK_KILLED"
    finally:
        driver.stop()


def test_subscribe_retried_before_its_answer_leaves_the_offers_usable(cluster: LocalCluster) -> None:
    # a driver retries its Subscribe after a random wait in [0, backoff]: with a tiny
    # backoff, retries reach the master after it answered and made offers; the offers
    # the scheduler launches on must still be valid (no TASK_LOST "no longer valid")
    tasks = [(f"quick{i}", "true") for i in range(4)]
    scheduler = RecordingScheduler(tasks)
    driver = start_driver(scheduler, cluster, "eager", config=SchedulerConfig(registration_backoff=0.0005))
    try:
        assert scheduler.wait_terminal([t for t, _ in tasks])
        assert {scheduler.states(t)[-1] for t, _ in tasks} == {"TASK_FINISHED"}, scheduler
    finally:
        driver.stop()


def test_kill_of_unknown_task_answers_lost(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler()
    driver = start_driver(scheduler, cluster, "unknown-kill")
    try:
        assert scheduler.registered_event.wait(10)
        driver.kill_task(corral.TaskID(value="never-launched"))
        assert scheduler.wait_terminal(["never-launched"])
        update = scheduler.updates[-1]
        assert update.state == corral.TASK_LOST
        assert not update.HasField("uuid")  # master-generated: at-most-once, never acked
    finally:
        driver.stop()


def test_explicit_acknowledgements_hold_updates_until_acked(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([("explicit", "true")])
    driver = start_driver(scheduler, cluster, "explicit", implicit_acknowledgements=False)
    try:
        assert scheduler.wait(lambda: len(scheduler.states("explicit")) >= 1)
        # unacknowledged: the agent keeps the stream's head and sends nothing newer

        def pending() -> int:
            return sum(get_json(a.address, "/state")["pending_status_updates"] for a in cluster.agents)

        wait_for(lambda: pending() >= 1, 10, "a pending update on the agent")
        assert scheduler.states("explicit") == ["TASK_STARTING"]
        while not scheduler.wait_terminal(["explicit"], timeout=0.5):
            for status in list(scheduler.updates):
                driver.acknowledge_status_update(status)
        for status in list(scheduler.updates):
            driver.acknowledge_status_update(status)
        assert scheduler.states("explicit") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        wait_for(lambda: pending() == 0, 10, "all updates acknowledged")
    finally:
        driver.stop()


def test_invalid_task_gets_task_error_and_cluster_keeps_working(cluster: LocalCluster) -> None:
    class Greedy(RecordingScheduler):
        def make_task(self, task_id, command, offer):
            task = super().make_task(task_id, command, offer)
            if task_id == "too-big":
                del task.resources[:]
                task.resources.extend(corral.Resources.parse("cpus:1000;mem:32").to_protos())
            return task

    scheduler = Greedy([("too-big", "true"), ("fine", "true")])
    driver = start_driver(scheduler, cluster, "invalid")
    try:
        assert scheduler.wait_terminal(["too-big", "fine"])
        bad = [u for u in scheduler.updates if u.task_id.value == "too-big"]
        assert [corral.state_name(u.state) for u in bad] == ["TASK_ERROR"]
        assert "cpus" in bad[0].message and bad[0].reason == corral.TaskStatus.REASON_TASK_INVALID
        assert scheduler.states("fine")[-1] == "TASK_FINISHED"
    finally:
        driver.stop()


def test_callback_exception_is_reported_and_driver_keeps_running(cluster: LocalCluster) -> None:
    class Fragile(RecordingScheduler):
        raised = False

        def status_update(self, driver, status):
            if not self.raised:
                self.raised = True
                raise RuntimeError("boom in user code")
            super().status_update(driver, status)

    scheduler = Fragile([("fragile", "true")])
    driver = start_driver(scheduler, cluster, "fragile")
    try:
        assert scheduler.wait(lambda: any("boom in user code" in e for e in scheduler.errors))
        assert driver.status is corral.DriverStatus.RUNNING
        # the next task still runs and is reported
        scheduler.pending.append(("after", "true"))
        driver.revive_offers()
        assert scheduler.wait_terminal(["after"])
    finally:
        driver.stop()


def test_malformed_frames_are_counted_and_the_master_keeps_serving(cluster: LocalCluster) -> None:
    before = get_json(cluster.master_address, "/metrics/snapshot")
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.connect(get_json(cluster.master_address, "/info")["transport"])
    push.send(b"\x00garbage")                                        # bad magic
    push.send(encode(999, 1, b"tcp://127.0.0.1:1", b""))        # unknown type
    push.send(encode(10, 2, b"tcp://127.0.0.1:1", b"\xff\xff"))  # SUBSCRIBE, undecodable body
    # the status path's own codec: a status update whose columns differ in length, an
    # ack whose string runs past its end
    push.send(encode(56, 3, b"tcp://127.0.0.1:1", b"\x0a\x02\x1a\x00"))
    push.send(encode(17, 4, b"tcp://127.0.0.1:1", b"\x0a\x05ab"))
    # a ReregisterAgent that parses but lacks a required field (its agent's hostname)
    push.send(encode(int(MessageType.REREGISTER_AGENT), 5, b"tcp://127.0.0.1:1",
                           pb.ReregisterAgent(agent=pb.AgentInfo(id=pb.AgentID(value="x"))).SerializePartialToString()))
    push.close(linger=2000)

    def counted() -> dict | None:
        now = get_json(cluster.master_address, "/metrics/snapshot")
        grew = (now["transport/malformed"] > before["transport/malformed"]
                and now["transport/unknown_type"] > before["transport/unknown_type"]
                and now["transport/undecodable"] >= before["transport/undecodable"] + 4)
        return now if grew else None

    wait_for(counted, 10, "bad frames counted")
    result = corral_cli("execute", "--master", cluster.master_address, "--command", "true")
    assert result.returncode == 0, result.stdout + result.stderr
