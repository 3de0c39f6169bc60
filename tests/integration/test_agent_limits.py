"""Container limits, kill policy and sandbox GC on a real cluster: a task over its memory
or its sandbox disk is killed and failed with the limitation's reason; a task that
ignores SIGTERM is SIGKILLed after its grace period and reported killed (TASK_KILLING
first, for frameworks that understand it); completed sandboxes are deleted after the GC
delay while a running task's sandbox stays."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

import corral
from corral.agent.limits import scan_processes
from corral.protos import corral_pb2 as pb
from corral.testing.cluster import LocalCluster, wait_for

from support import RecordingScheduler, start_driver

R = pb.TaskStatus
GC_DELAY = 1.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    flags = ["--limit-check-interval", "0.1", "--container-disk-watch-interval", "0.2", "--gc-delay", str(GC_DELAY)]
    with LocalCluster(tmp_path_factory.mktemp("limits"), agents=1, resources="cpus:4;mem:2048;disk:2048",
                      agent_flags=flags) as c:
        yield c


def last(scheduler: RecordingScheduler, task_id: str) -> corral.TaskStatus:
    return [u for u in scheduler.updates if u.task_id.value == task_id][-1]


def zombie(pid: int) -> bool:
    """True for a dead process not yet reaped (or one already gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def sandboxes(cluster: LocalCluster, executor_id: str) -> list[Path]:
    return list((cluster.agents[0].work_dir / "sandboxes").glob(f"*/{executor_id}/*"))


def test_a_task_over_its_memory_is_failed_with_the_memory_limitation(cluster: LocalCluster) -> None:
    hog = 'python3 -c "b = bytearray(300*1024*1024); import time; time.sleep(30)"'
    scheduler = RecordingScheduler([("hog", hog)], resources="cpus:0.1;mem:64")
    driver = start_driver(scheduler, cluster, "memory-hog")
    try:
        assert scheduler.wait_terminal(["hog"], 20), scheduler.states("hog")
        status = last(scheduler, "hog")
        assert corral.state_name(status.state) == "TASK_FAILED"
        assert status.reason == R.REASON_CONTAINER_LIMITATION_MEMORY
        assert status.source == R.SOURCE_AGENT
        # the limit: the task's 64 MB plus the command executor's 64 MB allowance
        assert "of its 128 MB" in status.message and "memory limit exceeded" in status.message, status.message
    finally:
        driver.stop()


def test_a_task_over_its_sandbox_disk_is_failed_with_the_disk_limitation(cluster: LocalCluster) -> None:
    writer = "dd if=/dev/zero of=big bs=1M count=40 status=none && sleep 30"
    scheduler = RecordingScheduler([("writer", writer)], resources="cpus:0.1;mem:32;disk:10")
    driver = start_driver(scheduler, cluster, "disk-writer")
    try:
        assert scheduler.wait_terminal(["writer"], 20), scheduler.states("writer")
        status = last(scheduler, "writer")
        assert corral.state_name(status.state) == "TASK_FAILED"
        assert status.reason == R.REASON_CONTAINER_LIMITATION_DISK, status
        assert "of its 10 MB" in status.message, status.message
    finally:
        driver.stop()


class GraceScheduler(RecordingScheduler):
    """Launches tasks with a kill policy of 1 s grace."""

    def make_task(self, task_id: str, command: str, offer: corral.Offer) -> corral.TaskInfo:
        task = super().make_task(task_id, command, offer)
        task.kill_policy.grace_period.nanoseconds = 1_000_000_000
        return task


def test_a_task_ignoring_sigterm_is_sigkilled_after_its_grace_period(cluster: LocalCluster) -> None:
    stubborn = "trap '' TERM; touch trapped; sleep 600"
    aware, plain = GraceScheduler([("stubborn-aware", stubborn)]), GraceScheduler([("stubborn-plain", stubborn)])
    info = corral.FrameworkInfo(name="killing-aware", user="")
    info.capabilities.add(type=pb.FrameworkInfo.Capability.TASK_KILLING_STATE)
    drivers = [corral.SchedulerDriver(aware, info, cluster.master_address), start_driver(plain, cluster, "plain")]
    drivers[0].start()
    try:
        for scheduler, tid in ((aware, "stubborn-aware"), (plain, "stubborn-plain")):
            assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states(tid)), scheduler.states(tid)
            wait_for(lambda: [p for p in sandboxes(cluster, tid) if (p / "trapped").exists()], 10,
                     f"{tid} to ignore SIGTERM")
        pids = {tid: int(last(s, tid).message.split()[-1]) for s, tid in ((aware, "stubborn-aware"),
                                                                          (plain, "stubborn-plain"))}
        asked = time.monotonic()
        drivers[0].kill_task(corral.TaskID(value="stubborn-aware"))
        drivers[1].kill_task(corral.TaskID(value="stubborn-plain"))
        assert aware.wait_terminal(["stubborn-aware"], 15) and plain.wait_terminal(["stubborn-plain"], 15)
        assert time.monotonic() - asked >= 1.0  # SIGTERM was ignored: only the SIGKILL after the grace ended it
        assert aware.states("stubborn-aware")[-2:] == ["TASK_KILLING", "TASK_KILLED"]
        assert plain.states("stubborn-plain")[-2:] == ["TASK_RUNNING", "TASK_KILLED"]
        killing = [u for u in aware.updates if corral.state_name(u.state) == "TASK_KILLING"][0]
        assert "-9" in last(aware, "stubborn-aware").message  # the shell died of SIGKILL
        assert last(aware, "stubborn-aware").timestamp - killing.timestamp >= 0.9
        # nothing of either task (the shell and its sleep, one session each) is left running
        # (SIGKILLed processes leave /proc when the kernel has torn them down, a moment after
        # the agent saw the shell die: poll until then)
        def running() -> list[int]:
            left = [p.pid for p in scan_processes().values() if p.session in pids.values()]
            return [pid for pid in left if not zombie(pid)]

        wait_for(lambda: not running(), 10, "the stubborn tasks' processes to be gone")
    finally:
        for driver in drivers:
            driver.stop()


def test_completed_sandboxes_are_deleted_after_the_gc_delay_and_live_ones_stay(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([("brief", "true"), ("lasting", "sleep 600")])
    driver = start_driver(scheduler, cluster, "gc")
    try:
        assert scheduler.wait_terminal(["brief"]) and scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states("lasting"))
        finished = time.monotonic()
        assert last(scheduler, "brief").state == corral.TASK_FINISHED
        (brief,) = sandboxes(cluster, "brief")  # still there when the task has just finished
        (lasting,) = sandboxes(cluster, "lasting")
        wait_for(lambda: not brief.exists(), 10, "the completed sandbox to be deleted")
        assert time.monotonic() - finished >= GC_DELAY * 0.8
        assert not brief.parent.exists()  # the executor's directory, left empty, went too
        time.sleep(GC_DELAY * 1.5)
        assert (lasting / "stdout").exists()  # a live container's sandbox is never collected
        driver.kill_task(corral.TaskID(value="lasting"))
        assert scheduler.wait_terminal(["lasting"])
        wait_for(lambda: not lasting.exists(), 10, "the killed task's sandbox to be deleted")
    finally:
        driver.stop()


def test_with_no_enforce_limits_a_task_may_exceed_its_memory(tmp_path: Path) -> None:
    hog = 'python3 -c "b = bytearray(300*1024*1024); open(\'held\', \'w\').close(); import time; time.sleep(30)"'
    flags = ["--no-enforce-limits", "--limit-check-interval", "0.1"]
    with LocalCluster(tmp_path, agents=1, agent_flags=flags) as unlimited:
        scheduler = RecordingScheduler([("hog", hog)], resources="cpus:0.1;mem:64")
        driver = start_driver(scheduler, unlimited, "unlimited-hog")
        try:
            wait_for(lambda: [p for p in sandboxes(unlimited, "hog") if (p / "held").exists()], 15,
                     "the task to hold its 300 MB")
            time.sleep(0.5)  # five check intervals
            assert scheduler.states("hog")[-1] == "TASK_RUNNING"
        finally:
            driver.stop()


def test_a_stopped_agent_leaves_no_task_behind_and_collects_old_sandboxes_after_a_restart(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, agents=1, agent_flags=["--gc-delay", "3"]) as cluster:
        scheduler = RecordingScheduler([("before-restart", "sleep 600")])
        driver = start_driver(scheduler, cluster, "restart-gc")
        try:
            assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states("before-restart"))
            (sandbox,) = sandboxes(cluster, "before-restart")
            task_pid = int(last(scheduler, "before-restart").message.split()[-1])
            cluster.agents[0].stop()  # kills the task; the agent is gone before the GC delay passes
            assert sandbox.exists()
            # the executor died of the agent's SIGTERM: its task (in a session of its own) went with it
            # (SIGKILLed before the agent exited; it leaves /proc once the kernel has torn it down)
            def running() -> list[int]:
                return [p.pid for p in scan_processes().values() if p.session == task_pid and not zombie(p.pid)]

            wait_for(lambda: not running(), 10, "the task's processes to be gone")
            cluster.agents[0].start()
            wait_for(lambda: not sandbox.exists(), 15, "the earlier run's sandbox to be collected")
        finally:
            driver.stop()
