"""The runtime's clock is monotonic: a step of the wall clock neither fires an engine's
timers early nor stalls them, and the times engines stamp still read as dates."""
from __future__ import annotations

import enum
import threading
import time

import pytest

from corral.agent.daemon import AgentDaemon, AgentFlags
from corral.engines.base import Engine, on_timer
from corral.master.daemon import MasterDaemon, MasterFlags
from corral.resources import Resources
from corral.runtime import Runtime
from corral.runtime.clock import PROCESS_CLOCK, monotonic_clock
from corral.runtime.driver import DriverBase

#: how long the test engine's timer runs
DELAY = 0.3
HOUR = 3600.0


class SteppingWall:
    """A wall clock an operator (or NTP) can step."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def step(self, seconds: float) -> None:
        self.offset += seconds


class OneTimerKind(enum.Enum):
    ONCE = enum.auto()


class OneTimer(Engine):
    """Arms one timer when told to; remembers when (monotonic) it was armed and fired."""

    def __init__(self) -> None:
        super().__init__()
        self.armed_at = 0.0
        self.fired_at: float | None = None
        self.fired = threading.Event()

    def arm(self, now: float) -> None:
        self.armed_at = time.monotonic()
        self.set_timer(OneTimerKind.ONCE, now + DELAY)

    @on_timer(OneTimerKind.ONCE)
    def _fire(self, _subject: None, now: float) -> None:
        self.fired_at = time.monotonic()
        self.fired.set()


def test_the_clock_starts_at_the_wall_time_and_moves_only_with_the_monotonic_clock():
    wall = SteppingWall()
    before = time.time()
    clock = monotonic_clock(wall)
    monotonic_start, start = time.monotonic(), clock()
    assert before <= start <= time.time()  # reads as a date
    wall.step(HOUR)
    stepped_forward = clock()
    wall.step(-2 * HOUR)
    stepped_back = clock()
    elapsed = time.monotonic() - monotonic_start
    assert start <= stepped_forward <= stepped_back <= start + elapsed + 1e-6


@pytest.mark.parametrize("step", [HOUR, -HOUR], ids=["forward", "back"])
def test_a_wall_clock_step_neither_fires_nor_stalls_the_engines_timers(step):
    wall = SteppingWall()
    runtime = Runtime(lambda _address: OneTimer(), clock=monotonic_clock(wall))
    engine: OneTimer = runtime.engine  # type: ignore[assignment]
    runtime.start("clock-test")
    try:
        def arm_then_step() -> None:
            engine.arm(runtime.clock())
            wall.step(step)  # while the timer runs

        runtime.call(arm_then_step)
        assert engine.fired.wait(DELAY + 5), "a step back stalled the timer"
        assert engine.fired_at is not None
        assert engine.fired_at - engine.armed_at >= DELAY - 0.01, "a step forward fired the timer early"
    finally:
        runtime.stop()
        runtime.join(5)


def test_runtimes_drivers_and_daemons_read_the_process_clock(tmp_path):
    runtime = Runtime(lambda _address: OneTimer())
    runtime.transport.close()
    assert runtime.clock is PROCESS_CLOCK

    class Quiet(DriverBase):
        def _make_engine(self, address: str) -> Engine:
            return OneTimer()

        def _on_started(self, runtime: Runtime) -> None:
            pass

    driver = Quiet(user=None)
    driver.start()
    driver.abort()
    assert driver._runtime is not None and driver._runtime.clock is PROCESS_CLOCK

    master = MasterDaemon(MasterFlags(work_dir=tmp_path / "master", port=0))
    master.start()
    agent = AgentDaemon(AgentFlags(master=master.address, work_dir=tmp_path / "agent", port=0,
                                   resources=Resources.parse("cpus:1;mem:64"), enforce_limits=False))
    agent.start()
    agent.stop()
    master.stop()
    assert master.runtime.clock is PROCESS_CLOCK and agent.runtime.clock is PROCESS_CLOCK
