"""The simulated drivers: `SimSchedulerDriver` and `SimExecutorDriver` give a user's
`corral.Scheduler` and `corral.Executor` the calls of the real drivers, over engines a
`SimCluster` runs; `SimCommandExecutor` plays the built-in command executor in
simulated time."""
from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Any, Callable

from corral.engines.agent import LaunchExecutor
from corral.engines.base import Callback, MasterLost
from corral.engines.common import has_capability
from corral.engines.executor import AllAcknowledged, ExecutorEngine, Stop, serialise_status
from corral.engines.scheduler import Abort, SchedulerEngine
from corral.executor import Executor
from corral.protos import corral_pb2 as pb
from corral.runtime.actions import Performer
from corral.runtime.driver import DriverStatus, report_callback_error
from corral.scheduler import Scheduler, SchedulerCalls

if TYPE_CHECKING:
    from corral.testing.sim.cluster import SimCluster


class CallbackErrors(enum.Enum):
    """What the simulator does when a user callback raises."""

    #: let the exception out of `run_until` (the default: a test should see it)
    RAISE = "raise"
    #: do what the real driver does: log it and report it to the user's `error` callback;
    #: a status update's stays unacknowledged (delivered again when its agent retries)
    REPORT = "report"


class SimSchedulerDriver(SchedulerCalls):
    """The calls of `corral.SchedulerDriver`, mapped onto a `SchedulerEngine` run by a
    `SimCluster`. Status updates are acknowledged when `status_update` returns, unless
    the driver was made with explicit acknowledgements. A crashed scheduler's driver is
    ABORTED until it restarts (RUNNING again, with a new `engine`)."""

    def __init__(self, cluster: SimCluster, scheduler: Scheduler, engine: SchedulerEngine, host: str) -> None:
        self.cluster = cluster
        self.scheduler = scheduler
        self.engine = engine
        #: where the framework's program runs; its n-th process listens at "<host>/<n>" (n > 1)
        self.host = host
        #: 1 for the first process, +1 per restart (`SimCluster.restart_scheduler`)
        self.incarnation = 1
        self.status = DriverStatus.RUNNING
        self.callback_errors: list[BaseException] = []
        self._config = engine.config
        self._implicit_acks = []

    @property
    def address(self) -> str:
        return self.engine.transport

    @property
    def framework_id(self) -> str | None:
        return self.engine.framework_id

    def _call(self, fn: Callable[..., Any], *args: Any) -> DriverStatus:
        if self.status is DriverStatus.RUNNING:
            fn(*args)
        return self.status

    def _now(self) -> float:
        return self.cluster.clock.now

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` after `delay` simulated seconds while this scheduler runs, and send
        what it asked of the driver (for frameworks with I/O of their own to simulate,
        such as a data path to their executors)."""

        def fire() -> None:
            if self.status is DriverStatus.RUNNING:
                fn()
                self.cluster._pump(self.cluster._node_of(self.engine))

        self.cluster.schedule(delay, fire)

    def stop(self, failover: bool = False) -> DriverStatus:
        """Tear the framework down, or (failover=True) leave its tasks running for a
        successor; the driver stops receiving either way."""
        if self.status is DriverStatus.RUNNING:
            self.engine.stop(failover)
            self.cluster._finish_scheduler(self, DriverStatus.STOPPED)
        return self.status

    def abort(self) -> DriverStatus:
        if self.status is DriverStatus.RUNNING:
            self.cluster._finish_scheduler(self, DriverStatus.ABORTED)
        return self.status

    def _performers(self) -> dict[type, Performer]:
        """What the driver does with its engine's actions (as `SchedulerDriver`'s)."""
        return {Callback: self._deliver, Abort: lambda _action: self.abort(),
                MasterLost: lambda _action: self.cluster.find_master(self.engine.connect)}

    def _deliver(self, callback: Callback) -> None:
        """What the real driver's callback thread does with a callback: run it, then
        acknowledge or redeliver its status update; callbacks run synchronously here,
        so the driver has caught up after each."""
        failed = _run_callback(self, self.scheduler, callback)
        self._status_update_done(callback, failed)
        self._send_implicit_acks()


def _run_callback(driver: SimSchedulerDriver | SimExecutorDriver, user: Any, callback: Callback) -> bool:
    """Run one user callback as the real drivers' callback thread does (an exception
    logged and reported to the user's `error`: `report_callback_error`), except that
    under CallbackErrors.RAISE the exception goes out of the simulation. True when it
    raised."""
    method = callback.event._value_
    try:
        getattr(user, method)(driver, *callback.args)
    except Exception as exc:
        if driver.cluster.callback_errors is CallbackErrors.RAISE:
            raise
        driver.callback_errors.append(exc)
        report_callback_error(user, driver, method, exc)
        return True
    return False


# ------------------------------------------------------------- executor driver
class SimExecutorDriver:
    """The calls of `corral.ExecutorDriver`, mapped onto an `ExecutorEngine` run by a
    `SimCluster`, plus `call_later` so a simulated executor can let time pass.
    `stop()` ends the executor process once the agent has acknowledged every update."""

    def __init__(self, cluster: SimCluster, executor: Executor, engine: ExecutorEngine, agent_address: str,
                 container_id: str) -> None:
        self.cluster = cluster
        self.executor = executor
        self.engine = engine
        #: the agent that launched it (the same address across the agent's restarts)
        self.agent_address = agent_address
        self.container_id = container_id
        self.status = DriverStatus.RUNNING
        self.stopping = False
        self.callback_errors: list[BaseException] = []

    @property
    def address(self) -> str:
        return self.engine.transport

    @property
    def framework_id(self) -> str:
        return self.engine.framework_id

    @property
    def executor_id(self) -> str:
        return self.engine.executor_id

    def send_status_update(self, status: pb.TaskStatus) -> DriverStatus:
        data = serialise_status(status)  # (bad input raises, as the real driver's)
        if self.status is DriverStatus.RUNNING:
            self.engine.send_status_update(data, self.cluster.clock.now)
        return self.status

    def send_framework_message(self, data: bytes) -> DriverStatus:
        if self.status is DriverStatus.RUNNING:
            self.engine.send_framework_message(data)
        return self.status

    def stop(self) -> DriverStatus:
        if self.status is DriverStatus.RUNNING:
            self.stopping = True
            self._exit_if_flushed()
        return self.status

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` after `delay` simulated seconds, while the process is alive."""

        def fire() -> None:
            if self.status is DriverStatus.RUNNING:
                fn()
                self.cluster._pump(self.cluster._node_of(self.engine))

        self.cluster.schedule(delay, fire)

    def _exit_if_flushed(self) -> None:
        if self.stopping and self.engine.unacknowledged() == 0:
            self.cluster._exit_executor(self, 0, "executor stopped")

    def _performers(self) -> dict[type, Performer]:
        """What the driver does with its engine's actions (as `ExecutorDriver`'s)."""
        return {
            Callback: lambda action: _run_callback(self, self.executor, action),
            Stop: self._stop,
            AllAcknowledged: lambda _action: self._exit_if_flushed(),
        }

    def _stop(self, action: Stop) -> None:
        if action.flush:
            self.stop()
        else:  # the agent is gone for good: exit once the shutdown callback (next) has run
            self.cluster.schedule(0.0, lambda: self.cluster._exit_executor(self, 0, "executor lost its agent"))


class SimCommandExecutor(Executor):
    """The built-in command executor, simulated: TASK_STARTING, TASK_RUNNING, then the
    command plays out in simulated time and ends in TASK_FINISHED (status 0) or
    TASK_FAILED. Understood commands, joined with ';': `exit N`, `true`, `false`,
    `sleep SECONDS` and `sleep infinity` (runs until killed); anything else fails with
    status 127, as /bin/sh would. A kill ends the task with TASK_KILLED (after
    TASK_KILLING for frameworks that declare TASK_KILLING_STATE)."""

    _STEP = re.compile(r"^(?:exit\s+(?P<exit>\d+)|sleep\s+(?P<sleep>\S+)|(?P<word>true|false))$")

    def __init__(self) -> None:
        self.framework: pb.FrameworkInfo | None = None
        self.task: pb.TaskInfo | None = None
        self.done = False

    def registered(self, driver: Any, executor_info: pb.ExecutorInfo, framework_info: pb.FrameworkInfo,
                   agent_info: pb.AgentInfo) -> None:
        self.framework = framework_info

    def launch_task(self, driver: Any, task: pb.TaskInfo) -> None:
        if self.task is not None:
            driver.send_status_update(pb.TaskStatus(task_id=task.task_id, state=pb.TASK_ERROR,
                                                    reason=pb.TaskStatus.REASON_TASK_INVALID,
                                                    message="the command executor runs one task only"))
            return
        self.task = task
        self._status(driver, pb.TASK_STARTING)
        self._status(driver, pb.TASK_RUNNING)
        self._run([s.strip() for s in task.command.value.split(";") if s.strip()], 0, driver)

    def _run(self, steps: list[str], status: int, driver: Any) -> None:
        """Play `steps` from the first; `status` is the last step's exit status."""
        if self.done:
            return
        for i, step in enumerate(steps):
            match = self._STEP.match(step)
            if match is None:
                status = 127
            elif match["exit"] is not None:
                self._end(driver, int(match["exit"]))
                return
            elif match["word"] is not None:
                status = 0 if match["word"] == "true" else 1
            elif match["sleep"] == "infinity":
                return
            else:
                rest = steps[i + 1:]
                driver.call_later(float(match["sleep"]), lambda: self._run(rest, 0, driver))
                return
        self._end(driver, status)

    def _end(self, driver: Any, status: int) -> None:
        self.done = True
        if status == 0:
            self._status(driver, pb.TASK_FINISHED, "Command exited with status 0")
        else:
            self._status(driver, pb.TASK_FAILED, f"Command exited with status {status}")
        driver.stop()

    def kill_task(self, driver: Any, task_id: pb.TaskID) -> None:
        if self.task is None or self.done or task_id.value != self.task.task_id.value:
            return
        self.done = True
        if self.framework is not None and has_capability(self.framework, pb.FrameworkInfo.Capability.TASK_KILLING_STATE):
            self._status(driver, pb.TASK_KILLING)
        self._status(driver, pb.TASK_KILLED, "Command terminated with signal SIGTERM")
        driver.stop()

    def shutdown(self, driver: Any) -> None:
        if self.task is not None:
            self.kill_task(driver, self.task.task_id)

    def _status(self, driver: Any, state: int, message: str = "") -> None:
        assert self.task is not None
        status = pb.TaskStatus(task_id=self.task.task_id, state=state)
        if message:
            status.message = message
        driver.send_status_update(status)


#: makes the `corral.Executor` that plays a custom executor the agent launches
ExecutorFactory = Callable[[LaunchExecutor], Executor]

