"""The engines' share of an acknowledged status update: CPU per update through the real
executor, agent, master and scheduler engines in one thread, no sockets.

Every message between them is serialised, put in an envelope, decoded and parsed, as a
runtime would; what is left out is ZeroMQ and the runtimes' loops. One thread and a
quiet heap make this a steady figure (the end-to-end bench, `bench_status_updates.py`,
depends on how the OS spreads four processes over two cores): it is the floor under
the end-to-end cost, and the part of it that engine changes move.

Timed: 3 updates for each of 10 000 tasks handed to the executor engine, then the
messages they cause delivered until none is left (every update relayed to the
scheduler, acknowledged, the acks relayed back to the agent and the executor).

Unbatched, every update and ack travels in a message of its own; batched, each engine
fills one message per peer and turn (`Engine.batch`), as a `Runtime(batch=True)` does.

Run: python -m pytest benches/bench_status_engines.py --benchmark-only -s
"""
from __future__ import annotations

import collections
import gc

import pytest

from corral.engines.agent import AgentConfig, AgentEngine
from corral.engines.base import Callback, Send
from corral.engines.executor import ExecutorEngine, serialise_status
from corral.engines.master import MasterConfig, MasterEngine
from corral.engines.scheduler import SchedulerEngine, SchedulerEvent
from corral.net.protocol import BODY_CLASS, TYPE_NUMBER
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.runtime import GC_YOUNG_THRESHOLD
from corral.tasks import executor_info, executor_task
from corral._core.envelope import decode, encode

TASKS = 10_000
UPDATES_PER_TASK = 3
MASTER, AGENT, SCHEDULER, EXECUTOR = "tcp://m:1", "tcp://a:1", "tcp://s:1", "tcp://e:1"


class Wire:
    """The four engines joined by an in-memory queue of encoded frames."""

    def __init__(self) -> None:
        self.master = MasterEngine(pb.MasterInfo(id="m1", hostname="m", port=1, transport=MASTER),
                                   MasterConfig(ping_interval=1e9))
        info = pb.AgentInfo(hostname="a", resources=Resources.parse("cpus:100;mem:100000").to_protos())
        self.agent = AgentEngine(info, AGENT, AgentConfig(registration_backoff=0.001))
        self.scheduler = SchedulerEngine(pb.FrameworkInfo(user="bench", name="bench"), SCHEDULER)
        self.engines: dict[str, object] = {MASTER: self.master, AGENT: self.agent, SCHEDULER: self.scheduler}
        self.frames: collections.deque[tuple[str, bytes]] = collections.deque()
        self.offers: list[pb.Offer] = []
        self.to_ack: list[tuple[str, str, bytes]] = []

    def _collect(self) -> None:
        for address, engine in self.engines.items():
            sender = address.encode()
            for action in engine.take_actions():
                if type(action) is Send:
                    body = action.body
                    self.frames.append((action.to, encode(TYPE_NUMBER[type(body)], 0, sender,
                                                                 body.SerializeToString())))
                elif type(action) is Callback and action.event is SchedulerEvent.RESOURCE_OFFERS:
                    self.offers.extend(action.args[0])
                elif type(action) is Callback and action.event is SchedulerEvent.STATUS_UPDATE:
                    self.to_ack.append(action.ack)

    def run(self, now: float) -> None:
        """Deliver until nothing is left; the scheduler acknowledges what it was given
        (as its driver does once the callback returned)."""
        self._collect()
        while self.frames or self.to_ack:
            while self.frames:
                to, frame = self.frames.popleft()
                engine = self.engines.get(to)
                if engine is not None:
                    env = decode(frame)
                    engine.handle(env.sender.decode(), BODY_CLASS[env.type].FromString(env.body), now)
            acks, self.to_ack = self.to_ack, []
            self.scheduler.acknowledge_delivered(acks)
            self._collect()

    def set_up(self) -> ExecutorEngine:
        self.agent.connect(MASTER, 0.0)
        self.scheduler.connect(MASTER, 0.0)
        for t in (0.01, 0.1, 1.0, 2.0):
            for engine in (self.agent, self.master, self.scheduler):
                engine.tick(t)
            self.run(t)
        offer = self.offers[0]
        exe = executor_info("bench-exec", "true")
        op = pb.Offer.Operation(type=pb.Offer.Operation.LAUNCH)
        op.launch.task_infos.extend(executor_task(f"t{i}", exe, offer.agent_id, "cpus:0.001;mem:1", task_id=f"t{i}")
                                    for i in range(TASKS))
        self.scheduler.accept([offer.id], [op], None, 3.0)
        self.run(3.0)
        executor = ExecutorEngine(self.scheduler.framework_id, "bench-exec", AGENT, EXECUTOR)
        self.engines[EXECUTOR] = executor
        executor.start(3.0)
        self.run(3.0)
        assert len(executor.tasks) == TASKS
        return executor


@pytest.mark.parametrize("batch", [False, True], ids=["unbatched", "batched"])
def test_status_path_engines_in_one_thread(benchmark, batch):
    wire = Wire()
    executor = wire.set_up()
    for engine in wire.engines.values():
        engine.batch = batch  # type: ignore[attr-defined]
    now = [4.0]
    statuses = []
    for i in range(TASKS):
        status = pb.TaskStatus(state=pb.TASK_RUNNING)
        status.task_id.value = f"t{i}"
        statuses.append(status)

    def once():
        now[0] += 1.0
        for _ in range(UPDATES_PER_TASK):
            for status in statuses:
                executor.send_status_update(serialise_status(status), now[0])
        wire.run(now[0])

    before = wire.scheduler.counters["updates"]
    young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)  # as every runtime sets it
    try:
        benchmark.pedantic(once, rounds=5, warmup_rounds=1)
    finally:
        gc.set_threshold(young, middle, old)
    total = TASKS * UPDATES_PER_TASK
    assert wire.scheduler.counters["updates"] - before == 6 * total  # warm-up + 5 rounds, each update once
    assert len(wire.agent.updates) == 0 and executor.unacknowledged() == 0
    per_update = benchmark.stats.stats.median / total
    benchmark.extra_info["us_per_update"] = per_update * 1e6
    print(f"\nengines, one thread, {'batched' if batch else 'unbatched'}: {per_update * 1e6:.1f} us of CPU per acknowledged update "
          f"(at most {1 / per_update:,.0f} updates/s per core)")


#: rounds of each kind in the event stream's comparison, alternated
EVENT_ROUNDS = 7


@pytest.mark.parametrize("batch", [False, True], ids=["unbatched", "batched"])
def test_event_stream_share_of_the_engines_cpu(benchmark, batch):
    """Rounds with a subscriber to the master's operator event stream (its events taken,
    as server-sent events, once at the end of each round: a round takes about as long as
    the daemon's FLUSH_INTERVAL) alternated with rounds without: the median CPU per
    update of the first over the second (issue 24: the stream may add at most 5%)."""
    import threading
    import time

    from corral.master.events import EventStream, Subscriber

    wire = Wire()
    executor = wire.set_up()
    for engine in wire.engines.values():
        engine.batch = batch  # type: ignore[attr-defined]
    stream = EventStream(wire.master, threading.RLock(), wire.master.snapshot, clock=lambda: 0.0)
    statuses = []
    for i in range(TASKS):
        status = pb.TaskStatus(state=pb.TASK_RUNNING)
        status.task_id.value = f"t{i}"
        statuses.append(status)
    now = [4.0]
    cpu: dict[bool, list[float]] = {False: [], True: []}
    made = [0]

    def one_round(events: bool) -> None:
        subscriber = Subscriber()
        if events:
            stream.subscribe(subscriber)
        now[0] += 1.0
        started = time.process_time()
        for _ in range(UPDATES_PER_TASK):
            for status in statuses:
                executor.send_status_update(serialise_status(status), now[0])
        wire.run(now[0])
        if events:
            by_principal, _subscribers = stream.take()
            made[0] += sum(len(c) for chunks in by_principal.values() for c in chunks)
        cpu[events].append((time.process_time() - started) / (TASKS * UPDATES_PER_TASK) * 1e6)
        if events:
            stream.unsubscribe(subscriber)
            stream.take()  # nobody left: the engine stops making events

    def alternate() -> None:
        one_round(False)  # warm-up
        for _ in range(EVENT_ROUNDS):
            one_round(False)
            one_round(True)

    young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    try:
        benchmark.pedantic(alternate, rounds=1, iterations=1)
    finally:
        gc.set_threshold(young, middle, old)
    assert made[0] > 0 and wire.master.operator_events is None
    off, on = sorted(cpu[False][1:]), sorted(cpu[True])
    ratio = on[len(on) // 2] / off[len(off) // 2]
    benchmark.extra_info.update(us_per_update_off=off, us_per_update_on=on, ratio=round(ratio, 3))
    print(f"\nengines, one thread, {'batched' if batch else 'unbatched'}: event stream off {off[len(off) // 2]:.2f} us, "
          f"on {on[len(on) // 2]:.2f} us per update: ratio {ratio:.3f}")
