"""Failures with real processes: an executor SIGKILLed in the middle of a shuffle, an
agent SIGKILLed mid job, a task that keeps raising, a driver that dies. The results stay
exact and the job summaries show that only the lost partitions were recomputed."""
from __future__ import annotations

import json
import operator
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from corral.examples.spark import Context
from corral.testing import LocalCluster, wait_for
from corral.testing.cluster import get_json

from gate import Gate, GatedPartition

pytestmark = pytest.mark.slow

RECORDS = [(i % 101, i) for i in range(20_000)]
EXPECTED = {}
for key, value in RECORDS:
    EXPECTED[key] = EXPECTED.get(key, 0) + value


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, agents=2) as c:
        yield c


def run_in_background(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def shuffle_job_held_at_the_reduce_side(ctx: Context, gate: Gate) -> tuple[threading.Thread, list[Any]]:
    """8 map partitions, then 4 reduce partitions that wait at the gate once they have
    read their input."""
    rdd = ctx.parallelize(RECORDS, 8).reduce_by_key(operator.add, 4).map_partitions(GatedPartition(gate.address))
    thread, box = run_in_background(rdd.collect)
    assert gate.wait_arrivals(2), "the reduce tasks did not start"
    return thread, box


def finish(thread: threading.Thread, box: list[Any], gate: Gate) -> dict[int, int]:
    gate.open()
    thread.join(120)
    assert box, "the job did not end"
    if isinstance(box[0], BaseException):
        raise box[0]
    return dict(box[0])


def test_an_executor_killed_mid_shuffle_loses_only_its_map_outputs(cluster: LocalCluster) -> None:
    gate = Gate()
    with Context(cluster.master_address, executors=2, progress=False) as ctx:
        thread, box = shuffle_job_held_at_the_reduce_side(ctx, gate)
        victim = max(ctx.executor_status(), key=lambda e: e.map_outputs)
        assert 0 < victim.map_outputs < 8
        os.kill(victim.pid, signal.SIGKILL)
        assert finish(thread, box, gate) == EXPECTED
        summary = ctx.last_job
        assert summary.succeeded and summary.recomputed == victim.map_outputs
        # every other launch is a first attempt: 8 map tasks and 4 reduce tasks
        assert summary.tasks == 8 + 4 + summary.recomputed + summary.retries, summary
        assert summary.retries >= 1, summary  # the reduce task that ran on the victim
        # a replacement executor was launched from new offers
        wait_for(lambda: len(ctx.executor_status()) == 2, 30, "a replacement executor")
        assert victim.id not in ctx.executor_pids()
    gate.close()


def test_a_reducer_that_cannot_fetch_from_a_killed_executor_gets_the_lost_outputs_recomputed(
        cluster: LocalCluster) -> None:
    """Without an aggregator the reduce side reads its blocks lazily: the tasks held at
    the gate read them only after the kill, and find the victim gone (a fetch failure)."""
    gate = Gate()
    with Context(cluster.master_address, executors=2, progress=False) as ctx:
        rdd = ctx.parallelize(RECORDS, 8).partition_by(4).map_partitions(GatedPartition(gate.address))
        thread, box = run_in_background(rdd.collect)
        assert gate.wait_arrivals(2), "the reduce tasks did not start"
        victim = max(ctx.executor_status(), key=lambda e: e.map_outputs)
        os.kill(victim.pid, signal.SIGKILL)
        gate.open()
        thread.join(120)
        assert box and sorted(box[0]) == sorted(RECORDS)
        summary = ctx.last_job
        assert summary.succeeded and summary.recomputed == victim.map_outputs
        assert summary.fetch_failures >= 1, summary  # the survivor's held task read from the victim
    gate.close()


def agent_of(cluster: LocalCluster, agent_id: str):
    return next(a for a in cluster.agents if get_json(a.address, "/state")["id"] == agent_id)


def test_an_agent_killed_mid_job_loses_only_the_partitions_it_held(cluster: LocalCluster) -> None:
    gate = Gate()
    with Context(cluster.master_address, executors=2, progress=False) as ctx:
        thread, box = shuffle_job_held_at_the_reduce_side(ctx, gate)
        victim = max(ctx.executor_status(), key=lambda e: e.map_outputs)
        agent_of(cluster, victim.agent_id).kill()
        wait_for(lambda: victim.id not in ctx.executor_pids(), 30, "the driver to notice the lost executor")
        assert finish(thread, box, gate) == EXPECTED
        summary = ctx.last_job
        assert summary.succeeded and summary.recomputed == victim.map_outputs
        assert summary.tasks == 8 + 4 + summary.recomputed + summary.retries, summary
        # the executor of the dead agent exited on its own
        wait_for(lambda: not _alive(victim.pid), 30, "the orphaned executor to exit")
    gate.close()


def test_a_task_that_raises_fails_the_job_with_the_users_message_after_its_retries(cluster: LocalCluster) -> None:
    def parse(x: str) -> int:
        return int(x)

    with Context(cluster.master_address, executors=2, progress=False) as ctx:
        with pytest.raises(ValueError, match="invalid literal for int.*'seven'") as caught:
            ctx.parallelize(["1", "2", "seven", "8"], 2).map(parse).collect()
        assert "in parse" in str(caught.value.__cause__)
        assert ctx.last_job.retries == 3
        assert ctx.parallelize(["1", "2"], 2).map(parse).sum() == 3  # the context goes on


DRIVER = """
import json, sys
from corral.examples.spark import Context
ctx = Context(sys.argv[1], executors=2, progress=False)
print(json.dumps(ctx.executor_pids()), flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is as good as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_when_the_driver_dies_its_executors_exit_on_their_own(cluster: LocalCluster) -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, cluster.master_address], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(driver.stdout.readline())
        assert len(pids) == 2 and all(_alive(p) for p in pids.values())
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        wait_for(lambda: not any(_alive(p) for p in pids.values()), 30, "the executors to exit")
        wait_for(lambda: not any(f["tasks"] for f in cluster.state()["frameworks"]), 30, "the tasks to end")
    finally:
        driver.kill()
