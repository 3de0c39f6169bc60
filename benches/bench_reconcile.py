"""Explicit reconciliation of 1k, 10k and 100k tasks (issue 3: <= 1 s for 100k).

- `test_reconcile_master_engine`: the master engine alone handles one Reconcile call
  naming N known tasks (already decoded) and we collect its sends (`take_actions`: N
  answers packed in Updates messages); no serialisation, no sockets.
- `test_reconcile_over_transport`: the whole path. A master `Runtime` in a child
  process (spawned; it holds the N tasks, built through the protocol by
  `cluster_state.build_master`) and a scheduler `Runtime` (the real `SchedulerEngine`)
  in this process, over ZeroMQ on tcp loopback. Timed: from handing `reconcile(N
  statuses)` to the scheduler's I/O thread until the N-th answer has been turned into a
  `status_update` callback (the point where the driver hands it to the callback
  thread). Two processes, so the master's and the scheduler's Python run on the two
  cores at once. `batch=True` runs both transports with wire batching on.

Run: python -m pytest benches/bench_reconcile.py --benchmark-only
"""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from corral.engines.base import Callback, MasterLost
from corral.engines.scheduler import SchedulerEngine, SchedulerEvent
from corral.protos import corral_pb2 as pb
from corral.runtime import Runtime
from corral.net.wire import Updates

from cluster_state import SCHEDULER, build_master, reconcile_call, wire

SIZES = [1_000, 10_000, 100_000]
ROUNDS = {1_000: 20, 10_000: 10, 100_000: 5}

_masters: dict[int, tuple] = {}


def _master(n: int):
    if n not in _masters:
        _masters.clear()  # keep one big master alive at a time
        m, fid, tasks = build_master(n)
        _masters[n] = (m, wire(reconcile_call(fid, tasks)))
    return _masters[n]


@pytest.mark.parametrize("n", SIZES)
def test_reconcile_master_engine(benchmark, n):
    master, call = _master(n)

    def once():
        master.handle(SCHEDULER, call, 10.0)
        return master.take_actions()

    out = once()
    assert all(isinstance(a.body, Updates) for a in out) and sum(len(a.body.rows) for a in out) == n
    del out
    benchmark.extra_info["tasks"] = n
    benchmark.pedantic(once, rounds=ROUNDS[n], warmup_rounds=1)
    benchmark.extra_info["answers_per_s"] = n / benchmark.stats.stats.median


# ----------------------------------------------------------------- over the wire
def _master_process(n: int, scheduler: str, batch: bool, conn) -> None:
    """Child: build a master holding n tasks of the framework served at `scheduler`,
    run it in a Runtime, report its address, stop when told."""
    master, _fid, _tasks = build_master(n, scheduler=scheduler)
    runtime = Runtime(lambda _address: master, batch=batch)
    master.take_actions()
    runtime.start("bench-master")
    conn.send(runtime.address)
    conn.recv()  # "stop"
    conn.send(runtime.metrics())
    runtime.stop()
    runtime.join(5.0)


class Answers:
    """Counts the scheduler engine's status_update callbacks (on its I/O thread)."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.done = threading.Event()

    def expect(self, n: int) -> None:
        self.count = 0
        self.target = n
        self.done.clear()

    def __call__(self, callback: Callback) -> None:
        if callback.event is SchedulerEvent.STATUS_UPDATE:
            self.count += 1
            if self.count == self.target:
                self.done.set()


@pytest.fixture(scope="module", params=[False, True], ids=["unbatched", "batched"])
def wire_mode(request):
    return request.param


@pytest.mark.parametrize("n", SIZES)
def test_reconcile_over_transport(benchmark, n, wire_mode):
    answers = Answers()
    info = pb.FrameworkInfo(user="bench", name="bench")
    sched = Runtime(lambda address: SchedulerEngine(info, address), batch=wire_mode)
    sched.add_performers({Callback: answers})
    # the master child needs the scheduler's address (its framework is served there)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_master_process, args=(n, sched.address, wire_mode, child), daemon=True)
    proc.start()
    try:
        assert parent.poll(120), "master child did not start"
        master_address = parent.recv()
        sched.start("bench-scheduler")
        engine: SchedulerEngine = sched.engine
        lost = []

        def reconnect(_action) -> None:  # what the real driver does (its detector finds the master again)
            lost.append(time.time())
            engine.connect(master_address, sched.clock())

        sched.add_performers({MasterLost: reconnect})
        # subscribing starts the driver's own round: an implicit reconcile (n answers)
        answers.expect(n)
        sched.call_soon(lambda: engine.connect(master_address, sched.clock()))
        assert answers.done.wait(60), (f"implicit round: {answers.count}/{n} answers; scheduler "
                                       f"{engine.subscription}, {sched.metrics()}, master lost {len(lost)}")
        statuses = []
        for i in range(n):
            status = pb.TaskStatus(state=pb.TASK_RUNNING)
            status.task_id.value = f"task-{i}"
            status.agent_id.value = f"m1-S{i // 1000 + 1:04d}"  # as build_master's agents are named
            statuses.append(status)

        def once():
            answers.expect(n)
            sched.call_soon(engine.reconcile, statuses)
            assert answers.done.wait(60), f"{answers.count}/{n} answers"

        benchmark.extra_info["tasks"] = n
        benchmark.extra_info["batch"] = wire_mode
        benchmark.pedantic(once, rounds=max(3, ROUNDS[n] // 2), warmup_rounds=1)
        benchmark.extra_info["answers_per_s"] = n / benchmark.stats.stats.median
        parent.send("stop")
        master_metrics = parent.recv() if parent.poll(10) else {}
        benchmark.extra_info["master_send_dropped"] = master_metrics.get("send_dropped")
        benchmark.extra_info["scheduler_received"] = sched.metrics().get("received")
        benchmark.extra_info["master_lost"] = len(lost)
    finally:
        sched.stop()
        sched.join(5.0)
        proc.join(10)
        if proc.is_alive():
            proc.kill()
