"""The drivers' threads: commands from other threads reach the I/O loop (waking it only
when it may be blocked), and the scheduler driver's implicit acknowledgements leave the
callback thread together."""
from __future__ import annotations

import threading
import time

import pytest

from corral.runtime.driver import _SENTINEL, DriverStatus
from corral.engines.base import Callback, Engine
from corral.engines.scheduler import SchedulerEvent
from corral.protos import corral_pb2 as pb
from corral.runtime import Runtime
from corral.runtime.loop import COMMANDS_PER_ITERATION, MAX_WAIT
from corral.scheduler import IMPLICIT_ACKS_MAX, Scheduler, SchedulerDriver


class Idle(Engine):
    """An engine with nothing to do: the loop waits for commands."""


@pytest.fixture
def runtime():
    rt = Runtime(lambda _address: Idle())
    wakes = []
    wake = rt.transport.wake
    rt.transport.wake = lambda: (wakes.append(threading.current_thread()), wake())  # type: ignore[method-assign]
    rt.wakes = wakes  # type: ignore[attr-defined]
    rt.start("test-io")
    yield rt
    rt.stop()
    rt.join(5)


def test_a_command_from_another_thread_wakes_a_waiting_loop(runtime):
    runtime.call(lambda: None)
    deadline = time.monotonic() + 5
    while not runtime._waiting and time.monotonic() < deadline:  # back to waiting after the call
        time.sleep(0.001)  # (yields the GIL to the loop; nothing signals "waiting")
    assert runtime._waiting
    # without a wake-up the loop would sleep up to MAX_WAIT: the call would time out
    assert runtime.call(lambda: "ran", timeout=MAX_WAIT / 2) == "ran"
    assert runtime.wakes and all(t is threading.current_thread() for t in runtime.wakes)


def test_commands_in_a_burst_wake_the_waiting_loop_once(runtime):
    runtime.call(lambda: None)
    deadline = time.monotonic() + 5
    while not runtime._waiting and time.monotonic() < deadline:
        time.sleep(0.001)
    assert runtime._waiting
    ran = []
    before = len(runtime.wakes)
    with runtime.lock:  # the woken loop cannot run the commands and wait again meanwhile
        for i in range(100):
            runtime.call_soon(ran.append, i)
        assert len(runtime.wakes) - before == 1
    runtime.call(lambda: None)
    assert ran == list(range(100))


def test_commands_queued_on_the_io_thread_do_not_wake_it(runtime):
    ran = []

    def from_io_thread():
        for i in range(50):
            runtime.call_soon(ran.append, i)

    runtime.call(from_io_thread)
    before = len(runtime.wakes)
    runtime.call(lambda: None)  # runs after the 50 (commands keep their order)
    assert ran == list(range(50))
    assert len(runtime.wakes) - before <= 1  # only this thread's own call, if the loop was waiting


class FakeEngine:
    """The engine calls the callback thread makes, grouped by the I/O-thread command
    that made them."""

    def __init__(self, expected: int) -> None:
        self.groups: list[list[tuple[str, str]]] = []
        self.expected = expected
        self.done = threading.Event()

    def acknowledge_delivered(self, acks: list[tuple[str, str, bytes]]) -> None:
        for _agent_id, tid, _uuid in acks:
            self._record("ack", tid)

    def redeliver(self, status: pb.TaskStatus) -> None:
        self._record("redeliver", status.task_id.value)

    def _record(self, what: str, tid: str) -> None:
        self.groups[-1].append((what, tid))
        if sum(map(len, self.groups)) == self.expected:
            self.done.set()


class FakeRuntime:
    """What the driver's calls need of a runtime: call_soon runs the command at once
    (as the I/O thread would), opening a new group of engine calls."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def call_soon(self, fn, *args) -> None:
        self.engine.groups.append([])
        fn(*args)


class Raising(Scheduler):
    def status_update(self, driver, status):
        if status.task_id.value == "bad":
            raise RuntimeError("user code failed")


def run_callbacks(task_ids: list[str]) -> list[list[tuple[str, str]]]:
    """Queue a status_update callback per task id, then let the callback thread of a
    running driver take them all: the engine calls it caused, by command."""
    driver = SchedulerDriver(Raising(), pb.FrameworkInfo(user="u", name="n"), "127.0.0.1:1")
    engine = FakeEngine(len(task_ids))
    driver._runtime = FakeRuntime(engine)  # type: ignore[assignment]
    driver.status = DriverStatus.RUNNING
    for tid in task_ids:
        status = pb.TaskStatus(task_id=pb.TaskID(value=tid), state=pb.TASK_RUNNING, uuid=tid.encode())
        callback = Callback(SchedulerEvent.STATUS_UPDATE, status)
        callback.ack = ("agent-1", tid, tid.encode())
        driver._callbacks.put(callback)
    thread = threading.Thread(target=driver._callback_loop)
    thread.start()
    try:
        assert engine.done.wait(10)
    finally:
        driver._callbacks.put(_SENTINEL)
        thread.join(10)
    return engine.groups


def test_implicit_acks_of_the_callbacks_run_together_go_in_one_command():
    assert run_callbacks(["t1", "t2", "t3"]) == [[("ack", "t1"), ("ack", "t2"), ("ack", "t3")]]


def test_a_long_run_of_callbacks_sends_its_acks_in_bounded_groups():
    tids = [f"t{i}" for i in range(IMPLICIT_ACKS_MAX + 10)]
    groups = run_callbacks(tids)
    assert [len(g) for g in groups] == [IMPLICIT_ACKS_MAX, 10]
    assert [tid for g in groups for _, tid in g] == tids


def test_an_update_whose_callback_raised_is_not_acknowledged_but_redelivered():
    groups = run_callbacks(["t1", "bad", "t2"])
    assert sorted(call for g in groups for call in g) == [("ack", "t1"), ("ack", "t2"), ("redeliver", "bad")]
    assert ("redeliver", "bad") in [call for g in groups for call in g if len(g) == 1]


def test_a_flood_of_commands_runs_a_bounded_number_per_iteration(runtime):
    """A thread queueing calls faster than the loop runs them must not stop the loop
    from performing what they caused (sending it) between batches of them."""
    ran: list[int] = []
    seen_by_perform: list[int] = []
    perform = runtime._perform

    def counting_perform() -> bool:
        seen_by_perform.append(len(ran))
        return perform()

    def flood() -> None:  # on the I/O thread: the commands it queues run after it
        runtime._perform = counting_perform
        for i in range(2 * COMMANDS_PER_ITERATION + 10):
            runtime.call_soon(ran.append, i)

    runtime.call(flood)
    runtime.call(lambda: None)  # queued behind the flood: it has run once this returns
    assert ran == list(range(2 * COMMANDS_PER_ITERATION + 10))
    steps = sorted(set(seen_by_perform))
    assert steps[:3] == [0, COMMANDS_PER_ITERATION, 2 * COMMANDS_PER_ITERATION]
