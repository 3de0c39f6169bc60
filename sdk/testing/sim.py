"""A deterministic in-memory simulator that runs the real engines together.

Owns the simulated world a test runs in: a `FakeClock`, a `SimNetwork` that carries
every `Send` between engines registered under their transport addresses (serialised
and re-parsed on delivery, so nothing passes that would not survive the wire), a
`FaultPlan` the network consults for each message (drop, duplicate, delay) and for
partitions, and that the cluster follows for process crashes and restarts, and a
`SimCluster`: one `MasterEngine`, N `AgentEngine`s, schedulers run by
`SimSchedulerDriver` around a user's `corral.Scheduler`, and executors run by
`SimExecutorDriver` around a `corral.Executor` (by default `SimCommandExecutor`, which
plays out a task's shell command in simulated time).

What the real daemons keep on disk is kept in memory: each agent's checkpoints
(`SimCheckpoints`, written by the engine's checkpoint actions, read back by
`AgentEngine.recover` when the agent restarts) and the master's registry of admitted
agents (a `RegistryState`, handed to the next master after a master restart).

The transport is modelled as the real one behaves: each link (sender -> receiver) is
FIFO, so a delayed message holds back those behind it and reordering happens between
links; a crashed process's peers get `PeerEvent.DISCONNECTED` at once (its sockets are
closed), and peers cut off by a partition get it after `HEARTBEAT_TIMEOUT` (the
transport's heartbeats time out), as the ZeroMQ transport reports them.

Invariants:
- nothing sleeps and nothing reads the wall clock: time moves only when `run_until`,
  `run_for` or `step` jump the clock to the next event (a message delivery, an engine
  deadline, a scheduled process event);
- one seed gives one history: every random choice (engines' backoffs and uuids, fault
  decisions, which executor a crash hits) comes from `random.Random` instances derived from the cluster's seed, and
  simultaneous events are taken in a fixed order (messages in send order, then engines
  in creation order, then process events in scheduling order);
- a process that is down receives nothing (messages to it are undeliverable) and its
  engine's timers do not fire; a restarted process is a new engine at the same address
  (a scheduler: at a new address on the same host, as a new program would bind);
- user callbacks run synchronously, like the real drivers' callback thread would run
  them, and calls they make into their driver take effect before the next event.
"""
from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from google.protobuf.message import Message

from corral.driver import DriverStatus
from corral.engines.agent import (
    CHECKPOINT_ACTIONS, AgentConfig, AgentEngine, CheckpointAgent, CheckpointExecutor, CheckpointExecutorExited,
    CheckpointFramework, CheckpointTask, DiscardFramework, DiscardRun, JournalAppend, JournalKind, JournalRecord, KillContainer,
    LaunchExecutor, RecoveredRun, RecoveredState, RecoveredTask, RecoverMode,
)
from corral.engines.base import Callback, Engine, MasterLost, Send
from corral.engines.common import has_capability
from corral.engines.executor import AllAcknowledged, ExecutorEngine, Stop, serialise_status
from corral.engines.master import REGISTRY_ACTIONS, MasterConfig, MasterEngine, RegistryState, apply_to_registry
from corral.engines.scheduler import Abort, SchedulerConfig, SchedulerEngine
from corral.executor import Executor
from corral.protocol import PARSE, MessageType, PeerEvent, message_type
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerCalls

MASTER_ADDRESS = "sim://master"
#: seconds after which the peers cut off by a partition learn it (PeerEvent.DISCONNECTED),
#: as the transport's heartbeats time out (corral.transport.HEARTBEAT_TIMEOUT_MS)
HEARTBEAT_TIMEOUT = 5.0


def agent_address(index: int) -> str:
    """The address of the `index`-th agent (from 1), the same across its restarts."""
    return f"sim://agent-{index}"


def scheduler_address(index: int) -> str:
    """The host of the `index`-th scheduler (from 1): its first process listens there,
    a restarted one under it (so partitions and rules naming it still apply)."""
    return f"sim://scheduler-{index}"

#: Messages whose loss the protocol repairs by retrying (registration, subscription, the
#: at-least-once status-update path, and the master's reconcile answers, which the
#: driver's reconciliation asks for again). Everything else is at-most-once by design
#: (offers, accepts, launches, kills, framework messages: a fault plan that drops those
#: tests the framework's own recovery), or, for pings and pongs, a loss is the very
#: signal the master uses to declare an agent unreachable.
RETRIED_TYPES: frozenset[MessageType] = frozenset({
    MessageType.SUBSCRIBE, MessageType.SUBSCRIBED,
    MessageType.REGISTER_AGENT, MessageType.REREGISTER_AGENT,
    MessageType.AGENT_REGISTERED, MessageType.AGENT_REREGISTERED,
    MessageType.REGISTER_EXECUTOR, MessageType.EXECUTOR_REGISTERED,
    MessageType.EXECUTOR_STATUS_UPDATE, MessageType.EXECUTOR_STATUS_UPDATE_ACK,
    MessageType.STATUS_UPDATE, MessageType.STATUS_UPDATE_ACK,
    MessageType.UPDATES, MessageType.ACKNOWLEDGE,
})


# ------------------------------------------------------------------------- clock
class FakeClock:
    """Simulated seconds; moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"cannot move the clock backwards by {seconds}s")
        self.now += seconds
        return self.now

    def advance_to(self, when: float) -> float:
        """Move to `when` (never backwards)."""
        self.now = max(self.now, when)
        return self.now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------ faults
class Fault(enum.Enum):
    DROP = "drop"
    DUPLICATE = "duplicate"
    #: the message arrives `delay` later, and so do those behind it on its link
    DELAY = "delay"


class Process(enum.Enum):
    """The kinds of process a `Crash` can hit."""

    MASTER = "master"
    AGENT = "agent"
    EXECUTOR = "executor"
    SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Crash:
    """At simulated time `at`, a process of kind `process` dies; it starts again
    `restart_after` seconds later (None: it stays down).

    `target` names which one: an agent's or a scheduler's address (`agent_address`,
    `scheduler_address`); for executors an address prefix (an agent's address: one of
    its executors) or "" (any), the executor being drawn from the cluster's RNG among
    the live ones that match (none live: nothing happens). The master needs no target.
    Executors never restart (their agent reports their tasks failed)."""

    process: Process
    at: float
    target: str = ""
    restart_after: float | None = None

    def __post_init__(self) -> None:
        if self.process is Process.EXECUTOR and self.restart_after is not None:
            raise ValueError("executors do not restart: their agent fails their tasks")
        if self.process in (Process.AGENT, Process.SCHEDULER) and not self.target:
            raise ValueError(f"a {self.process.value} crash needs a target address")


def _matches(address: str, names: frozenset[str]) -> bool:
    """An address matches a name when it is that name or lives under it (an executor
    at "sim://agent-1/<container>" is under "sim://agent-1")."""
    return address in names or any(address.startswith(name + "/") for name in names)


@dataclass(frozen=True)
class FaultRule:
    """With `probability`, apply `fault` to a matching message. Empty filters match
    everything; `delay` is the extra latency of a DELAY; the rule is active in
    [start, end) of simulated time."""

    fault: Fault
    probability: float = 1.0
    delay: float = 0.0
    types: frozenset[MessageType] = frozenset()
    senders: frozenset[str] = frozenset()
    receivers: frozenset[str] = frozenset()
    start: float = 0.0
    end: float = math.inf

    def applies(self, sender: str, to: str, msg_type: MessageType, now: float) -> bool:
        return (
            self.start <= now < self.end
            and (not self.types or msg_type in self.types)
            and (not self.senders or _matches(sender, self.senders))
            and (not self.receivers or _matches(to, self.receivers))
        )


@dataclass(frozen=True)
class Partition:
    """During [start, end) no message crosses between `addresses` (and what lives under
    them) and the rest of the network."""

    addresses: frozenset[str]
    start: float = 0.0
    end: float = math.inf

    def separates(self, a: str, b: str, now: float) -> bool:
        return self.start <= now < self.end and _matches(a, self.addresses) != _matches(b, self.addresses)


@dataclass
class FaultPlan:
    """What goes wrong: rules applied to each message as it is sent (in order; a DROP
    ends the evaluation), partitions checked as it is delivered, and process crashes
    (and restarts) that the cluster performs at their times."""

    rules: list[FaultRule] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)

    @classmethod
    def random(cls, rng: random.Random, *, agents: int, schedulers: int = 1, duration: float = 300.0,
               crashes: int = 3, partitions: int = 2) -> FaultPlan:
        """A plan drawn from `rng`, every fault of it over by `duration` (partitions healed,
        crashed processes restarted): up to 20% of the retried messages dropped, up to 10%
        duplicated, up to 10% of all messages delayed by up to 5 s; up to `partitions`
        partitions (an agent, a scheduler or the master cut off for 1 s to 2 min); and
        up to `crashes` crashes of processes of any kind, restarted after 0.1 s to 1 min."""
        end = duration
        rules = [
            FaultRule(Fault.DROP, rng.uniform(0.0, 0.2), types=RETRIED_TYPES, end=end),
            FaultRule(Fault.DUPLICATE, rng.uniform(0.0, 0.1), types=RETRIED_TYPES, end=end),
            FaultRule(Fault.DELAY, rng.uniform(0.0, 0.1), delay=rng.uniform(0.01, 5.0), end=end),
        ]
        hosts = ([MASTER_ADDRESS] + [agent_address(i) for i in range(1, agents + 1)]
                 + [scheduler_address(i) for i in range(1, schedulers + 1)])
        cuts = []
        for _ in range(rng.randint(0, partitions)):
            length = rng.uniform(1.0, 120.0)
            start = rng.uniform(0.0, end - length)
            cuts.append(Partition(frozenset({rng.choice(hosts)}), start, start + length))
        plan_crashes = []
        for _ in range(rng.randint(0, crashes)):
            kind = rng.choice(list(Process))
            restart = None if kind is Process.EXECUTOR else rng.uniform(0.1, 60.0)
            at = rng.uniform(0.0, end - (restart or 0.0))
            target = {Process.MASTER: "", Process.EXECUTOR: "",
                      Process.AGENT: agent_address(rng.randint(1, agents)),
                      Process.SCHEDULER: scheduler_address(rng.randint(1, schedulers))}[kind]
            plan_crashes.append(Crash(kind, at, target, restart))
        return cls(rules, cuts, sorted(plan_crashes, key=lambda c: c.at))

    @classmethod
    def lossy(cls, drop: float = 0.0, duplicate: float = 0.0, *,
              types: Iterable[MessageType] = ()) -> FaultPlan:
        """Drop a fraction `drop` and duplicate a fraction `duplicate` of the messages
        (of `types`, or all)."""
        kinds = frozenset(types)
        rules = []
        if drop:
            rules.append(FaultRule(Fault.DROP, drop, types=kinds))
        if duplicate:
            rules.append(FaultRule(Fault.DUPLICATE, duplicate, types=kinds))
        return cls(rules)

    def copies(self, rng: random.Random, sender: str, to: str, msg_type: MessageType,
               now: float) -> list[float]:
        """The extra delays of the copies of one message to deliver ([] = dropped)."""
        copies = [0.0]
        for rule in self.rules:
            if not rule.applies(sender, to, msg_type, now) or rng.random() >= rule.probability:
                continue
            if rule.fault is Fault.DROP:
                return []
            if rule.fault is Fault.DUPLICATE:
                copies.append(copies[-1])
            else:
                copies = [c + rule.delay for c in copies]
        return copies

    def partitioned(self, a: str, b: str, now: float) -> bool:
        return any(p.separates(a, b, now) for p in self.partitions)


# ----------------------------------------------------------------------- network
class NetEvent(enum.Enum):
    SENT = "sent"
    DELIVERED = "delivered"
    DROPPED = "dropped"
    DUPLICATED = "duplicated"
    DELAYED = "delayed"
    PARTITIONED = "partitioned"
    #: nobody listens at the address (e.g. an executor that has exited)
    UNDELIVERABLE = "undeliverable"
    #: the receiver has no handler for the type (the real dispatcher counts these too)
    UNHANDLED = "unhandled"


@dataclass(frozen=True)
class Delivery:
    """One message as it was delivered (recorded when the network's `record` is on)."""

    at: float
    sender: str
    to: str
    body: Message

    @property
    def type(self) -> MessageType:
        return message_type(self.body)


@dataclass(order=True)
class _InFlight:
    at: float
    seq: int
    sender: str = field(compare=False)
    to: str = field(compare=False)
    msg_type: MessageType = field(compare=False)
    data: bytes = field(compare=False)


Receiver = Callable[[str, Message], None]


class SimNetwork:
    """Carries messages between addresses, in send order (plus `latency` and any
    delay a fault adds; each link stays FIFO), applying a `FaultPlan`. Bodies travel
    as bytes."""

    def __init__(self, rng: random.Random, plan: FaultPlan | None = None, latency: float = 0.001,
                 record: bool = False) -> None:
        self.rng = rng
        self.plan = plan or FaultPlan()
        self.latency = latency
        self.record = record
        self.deliveries: list[Delivery] = []
        self.stats: Counter[NetEvent] = Counter()
        self._receivers: dict[str, Receiver] = {}
        self._in_flight: list[_InFlight] = []
        self._seq = itertools.count()
        #: every link (sender, receiver) used so far -> when its last message is due
        #: (a link delivers in order: nothing overtakes a delayed message on it)
        self.links: dict[tuple[str, str], float] = {}
        #: told of every partition `partition` starts (the cluster watches heartbeats)
        self.on_partition: Callable[[Partition], None] | None = None

    def attach(self, address: str, receiver: Receiver) -> None:
        self._receivers[address] = receiver

    def detach(self, address: str) -> None:
        self._receivers.pop(address, None)

    def partition(self, addresses: Iterable[str], now: float) -> Partition:
        """Cut `addresses` off from the rest of the network from `now` until `heal`."""
        part = Partition(frozenset(addresses), start=now)
        self.plan.partitions.append(part)
        if self.on_partition is not None:
            self.on_partition(part)
        return part

    def heal(self, part: Partition, now: float) -> None:
        self.plan.partitions.remove(part)
        self.plan.partitions.append(dataclasses.replace(part, end=now))

    def send(self, sender: str, to: str, body: Message, now: float) -> None:
        msg_type = message_type(body)
        data = body.SerializeToString()  # raises if a required field is missing
        self.stats[NetEvent.SENT] += 1
        copies = self.plan.copies(self.rng, sender, to, msg_type, now)
        if not copies:
            self.stats[NetEvent.DROPPED] += 1
            return
        self.stats[NetEvent.DUPLICATED] += len(copies) - 1
        link = (sender, to)
        for extra in copies:
            if extra:
                self.stats[NetEvent.DELAYED] += 1
            at = max(now + self.latency + extra, self.links.get(link, 0.0))
            self.links[link] = at
            heapq.heappush(self._in_flight, _InFlight(at, next(self._seq), sender, to, msg_type, data))

    def next_delivery(self) -> float | None:
        return self._in_flight[0].at if self._in_flight else None

    def in_flight(self) -> int:
        return len(self._in_flight)

    def deliver_next(self, now: float) -> bool:
        """Deliver the earliest message due at `now`; False when none is due."""
        if not self._in_flight or self._in_flight[0].at > now:
            return False
        msg = heapq.heappop(self._in_flight)
        if self.plan.partitioned(msg.sender, msg.to, now):
            self.stats[NetEvent.PARTITIONED] += 1
            return True
        receiver = self._receivers.get(msg.to)
        if receiver is None:
            self.stats[NetEvent.UNDELIVERABLE] += 1
            return True
        body = PARSE[msg.msg_type](msg.data)
        self.stats[NetEvent.DELIVERED] += 1
        if self.record:
            self.deliveries.append(Delivery(now, msg.sender, msg.to, body))
        receiver(msg.sender, body)
        return True


# ------------------------------------------------------------ scheduler driver
class CallbackErrors(enum.Enum):
    """What the simulator does when a user callback raises."""

    #: let the exception out of `run_until` (the default: a test should see it)
    RAISE = "raise"
    #: do what the real driver does: report it to the user's `error` callback, no ack
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

    def _perform(self, action: Any) -> None:
        if isinstance(action, Callback):
            self._deliver(action)
        elif isinstance(action, Abort):
            self.abort()
        elif isinstance(action, MasterLost):
            self.engine.connect(MASTER_ADDRESS, self.cluster.clock.now)
        else:
            raise TypeError(f"scheduler engine emitted an unknown action {action!r}")

    def _deliver(self, callback: Callback) -> None:
        failed = _run_callback(self.scheduler, self, callback, self.cluster.callback_errors, self.callback_errors)
        if callback.ack is not None and self.engine.config.implicit_acknowledgements and not failed:
            self._call(self.engine.acknowledge_delivered, [callback.ack])


def _run_callback(user: Any, driver: Any, callback: Callback, policy: CallbackErrors,
                  errors: list[BaseException]) -> bool:
    """Run one user callback; True when it raised (and `policy` is REPORT)."""
    try:
        getattr(user, callback.event.value)(driver, *callback.args)
        return False
    except Exception as exc:
        if policy is CallbackErrors.RAISE:
            raise
        errors.append(exc)
        if callback.event.value != "error":
            user.error(driver, f"{callback.event.value} callback raised {type(exc).__name__}: {exc}")
        return True


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

    def _perform(self, action: Any) -> None:
        if isinstance(action, Callback):
            _run_callback(self.executor, self, action, self.cluster.callback_errors, self.callback_errors)
        elif isinstance(action, Stop):
            if action.flush:
                self.stop()
            else:  # the agent is gone for good: exit once the shutdown callback (next) has run
                self.cluster.schedule(0.0, lambda: self.cluster._exit_executor(self, 0, "executor lost its agent"))
        elif isinstance(action, AllAcknowledged):
            self._exit_if_flushed()
        else:
            raise TypeError(f"executor engine emitted an unknown action {action!r}")


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


# ------------------------------------------------------------- what is on disk
@dataclass
class _CheckpointedRun:
    info: bytes
    command_executor: bool
    transport: str
    exited: bool = False
    #: task id -> serialised TaskInfo
    tasks: dict[str, bytes] = field(default_factory=dict)


class SimCheckpoints:
    """One agent's checkpoint directory, in memory: performs the engine's checkpoint
    actions (`CHECKPOINT_ACTIONS`) as `corral.agent.checkpoint.Checkpointer` writes them
    (messages are stored serialised, as on disk) and reads them back as the
    `RecoveredState` a restarted agent recovers from."""

    def __init__(self) -> None:
        self.agent: bytes | None = None
        self.frameworks: dict[str, bytes] = {}
        self.runs: dict[tuple[str, str, str], _CheckpointedRun] = {}
        #: (framework, executor, container, task) -> journal records (kind, uuid, update)
        self.journals: dict[tuple[str, str, str, str], list[tuple[JournalKind, bytes, bytes]]] = {}

    def perform(self, action: Any) -> None:
        if isinstance(action, CheckpointAgent):
            self.agent = action.info.SerializeToString()
        elif isinstance(action, CheckpointFramework):
            self.frameworks[action.info.id.value] = action.info.SerializeToString()
        elif isinstance(action, DiscardFramework):
            self.frameworks.pop(action.framework_id, None)
            for key in [k for k in self.runs if k[0] == action.framework_id]:
                del self.runs[key]
            for key in [k for k in self.journals if k[0] == action.framework_id]:
                del self.journals[key]
        elif isinstance(action, DiscardRun):
            key = (action.framework_id, action.executor_id, action.container_id)
            self.runs.pop(key, None)
            for journal in [k for k in self.journals if k[:3] == key]:
                del self.journals[journal]
        elif isinstance(action, CheckpointExecutor):
            key = (action.framework_id, action.info.executor_id.value, action.container_id)
            run = self.runs.get(key)
            if run is None:
                self.runs[key] = _CheckpointedRun(action.info.SerializeToString(), action.command_executor,
                                                  action.transport)
            else:
                run.command_executor, run.transport = action.command_executor, action.transport
        elif isinstance(action, CheckpointExecutorExited):
            run = self.runs.get((action.framework_id, action.executor_id, action.container_id))
            if run is not None:
                run.exited = True
        elif isinstance(action, CheckpointTask):
            run = self.runs.get((action.framework_id, action.executor_id, action.container_id))
            if run is not None:
                run.tasks[action.info.task_id.value] = action.info.SerializeToString()
        elif isinstance(action, JournalAppend):
            record = action.record
            update = record.update.SerializeToString() if record.update is not None else b""
            key = (action.framework_id, action.executor_id, action.container_id, action.task_id)
            self.journals.setdefault(key, []).append((record.kind, record.uuid, update))
        else:
            raise TypeError(f"not a checkpoint action: {action!r}")

    def recovered(self) -> RecoveredState | None:
        """What a restarted agent reads; None when it never checkpointed (a fresh agent)."""
        if self.agent is None:
            return None
        runs = []
        for (fid, eid, cid), run in self.runs.items():
            if fid not in self.frameworks:
                continue
            tasks = [RecoveredTask(pb.TaskInfo.FromString(info), [
                JournalRecord(kind, uuid, pb.StatusUpdate.FromString(update) if kind is JournalKind.UPDATE else None)
                for kind, uuid, update in self.journals.get((fid, eid, cid, tid), [])])
                for tid, info in run.tasks.items()]
            runs.append(RecoveredRun(fid, pb.ExecutorInfo.FromString(run.info), cid, run.command_executor,
                                     run.transport, pid=0, start_time=0, exited=run.exited, tasks=tasks))
        return RecoveredState(pb.AgentInfo.FromString(self.agent),
                              {fid: pb.FrameworkInfo.FromString(info) for fid, info in self.frameworks.items()}, runs)


# ---------------------------------------------------------------------- cluster
@dataclass(order=True)
class _Event:
    at: float
    seq: int
    fn: Callable[[], None] = field(compare=False)


@dataclass(eq=False)
class _Node:
    """One engine on the network: its address and what performs its local actions."""

    engine: Engine
    address: str
    perform: Callable[[Any], None]


class SimCluster:
    """A whole cluster in memory: the real master, agent, scheduler and executor
    engines, a simulated network and clock. Add schedulers with `add_scheduler`, then
    drive time with `run_until` / `run_for`. Command tasks run in `SimCommandExecutor`;
    custom executors come from `executor_factory`.

    Processes crash and restart as the fault plan's `crashes` say, or when a test calls
    `crash_master`, `crash_agent`, `crash_executor` or `crash_scheduler`:
    - master: a fresh `MasterEngine` (a new master id, the registry the old one left,
      nothing else) starts at the same address; agents and schedulers reregister;
    - agent: a fresh `AgentEngine` at the same address recovers from its checkpoints
      (`AgentEngine.recover`, reconnecting to the executors still running) when it has
      any; executors of frameworks that checkpoint wait for it, the others shut down
      when they lose it (their engine's rule);
    - executor: its process dies; the agent is told (`executor_exited`);
    - scheduler: a new `SchedulerEngine` with the framework's id (a failover, as a
      restarted framework that saved its id does) at a new address on the same host;
      the same `Scheduler` object serves it (it stands for the framework's own store).
    """

    def __init__(
        self,
        agents: int = 1,
        *,
        agent_resources: str = "cpus:4;mem:4096;disk:10000",
        seed: int = 0,
        faults: FaultPlan | None = None,
        latency: float = 0.001,
        master_config: MasterConfig | None = None,
        agent_config: AgentConfig | None = None,
        executor_factory: ExecutorFactory | None = None,
        callback_errors: CallbackErrors = CallbackErrors.RAISE,
        record: bool = False,
        batch: bool = False,
    ) -> None:
        self.clock = FakeClock()
        #: every engine collects the status path's rows per peer and turn (`Engine.batch`),
        #: as under `Runtime(batch=True)`
        self.batch = batch
        self.seed = seed
        self._rng = random.Random(seed)
        self.network = SimNetwork(self._child_rng(), faults, latency, record)
        self.network.on_partition = self._watch_partition
        self.callback_errors = callback_errors
        self.executor_factory = executor_factory
        self.master_config = master_config
        self.agent_config = agent_config or AgentConfig()
        self._events: list[_Event] = []
        self._event_seq = itertools.count()
        self._nodes: dict[str, _Node] = {}
        #: addresses of the processes that crashed and have not restarted
        self.down: set[str] = set()
        #: the master's registry of agents, as a restarted master finds it
        self.registry = RegistryState()
        #: each agent's checkpoints, by agent address
        self.checkpoints: dict[str, SimCheckpoints] = {}
        self._masters = 0
        self.master = self._start_master()

        resources = Resources.parse(agent_resources).to_protos()
        self._agent_infos: dict[str, pb.AgentInfo] = {}
        #: the current process of each agent (the last one, while it is down)
        self.agents: list[AgentEngine] = []
        for i in range(1, agents + 1):
            address = agent_address(i)
            self._agent_infos[address] = pb.AgentInfo(hostname=f"agent-{i}", resources=resources)
            self.checkpoints[address] = SimCheckpoints()
            self.agents.append(self._start_agent(address))

        self.schedulers: list[SimSchedulerDriver] = []
        #: every executor ever started, by address (exited ones have status != RUNNING)
        self.executors: dict[str, SimExecutorDriver] = {}
        for part in self.network.plan.partitions:
            self._watch_partition(part)
        for crash in self.network.plan.crashes:
            self.schedule(crash.at, lambda crash=crash: self.crash(crash))

    # ------------------------------------------------------------------ set-up
    def _child_rng(self) -> random.Random:
        return random.Random(self._rng.getrandbits(64))

    def _add_node(self, engine: Engine, address: str, perform: Callable[[Any], None]) -> _Node:
        engine.batch = self.batch
        node = _Node(engine, address, perform)
        self._nodes[address] = node
        handled = set(engine.handled_types())

        def receive(sender: str, body: Message) -> None:
            if message_type(body) not in handled:
                self.network.stats[NetEvent.UNHANDLED] += 1
                return
            engine.handle(sender, body, self.clock.now)
            self._pump(node)

        self.network.attach(address, receive)
        return node

    def _node_of(self, engine: Engine) -> _Node:
        return next(n for n in self._nodes.values() if n.engine is engine)

    def _remove_node(self, engine: Engine) -> None:
        node = self._node_of(engine)
        self._pump(node)  # what it sent before it went still goes out
        self.network.detach(node.address)
        del self._nodes[node.address]

    def _start_master(self) -> MasterEngine:
        self._masters += 1
        master_id = f"sim{self.seed}" if self._masters == 1 else f"sim{self.seed}r{self._masters}"
        info = pb.MasterInfo(id=master_id, hostname="master", port=5050, transport=MASTER_ADDRESS,
                             version="sim", start_time=self.clock.now)
        master = MasterEngine(info, self.master_config, now=self.clock.now, registry=self.registry)
        self._add_node(master, MASTER_ADDRESS, self._master_performer)
        return master

    def _start_agent(self, address: str) -> AgentEngine:
        """An agent process starts at `address`: it recovers from its checkpoints (if it
        has any), then looks for the master."""
        info = pb.AgentInfo()
        info.CopyFrom(self._agent_infos[address])
        agent = AgentEngine(info, address, self.agent_config, self._child_rng())
        node = self._add_node(agent, address, self._agent_performer(agent))
        state = self.checkpoints[address].recovered()
        if state is not None:
            live = {d.container_id for d in self.live_executors() if d.agent_address == address}
            agent.recover(state, live, RecoverMode.RECONNECT, self.clock.now)
        agent.connect(MASTER_ADDRESS, self.clock.now)
        self._pump(node)
        return agent

    def add_scheduler(self, scheduler: Scheduler, framework_info: pb.FrameworkInfo | None = None, *,
                      implicit_acknowledgements: bool = True,
                      config: SchedulerConfig | None = None) -> SimSchedulerDriver:
        """Start a scheduler driver for `scheduler`; it subscribes at once. Pass a
        `framework_info` with an id to fail over an existing framework."""
        info = framework_info or pb.FrameworkInfo(user="sim", name=type(scheduler).__name__)
        config = config or SchedulerConfig(implicit_acknowledgements=implicit_acknowledgements)
        host = scheduler_address(len(self.schedulers) + 1)
        engine = SchedulerEngine(info, host, config, self._child_rng())
        driver = SimSchedulerDriver(self, scheduler, engine, host)
        self.schedulers.append(driver)
        self._start_scheduler(driver)
        return driver

    def _start_scheduler(self, driver: SimSchedulerDriver) -> None:
        node = self._add_node(driver.engine, driver.address, driver._perform)
        driver.status = DriverStatus.RUNNING
        driver.engine.connect(MASTER_ADDRESS, self.clock.now)
        self._pump(node)

    def _finish_scheduler(self, driver: SimSchedulerDriver, status: DriverStatus) -> None:
        driver.status = status
        self._remove_node(driver.engine)

    # ------------------------------------------------------- crashes, restarts
    def crash(self, crash: Crash) -> None:
        """Perform one `Crash` now (its `at` is the plan's business)."""
        if crash.process is Process.MASTER:
            self.crash_master(crash.restart_after)
        elif crash.process is Process.AGENT:
            self.crash_agent(crash.target, crash.restart_after)
        elif crash.process is Process.SCHEDULER:
            for driver in self.schedulers:
                if driver.host == crash.target:
                    self.crash_scheduler(driver, crash.restart_after)
        else:
            live = [d for d in self.live_executors() if not crash.target or _matches(d.address, frozenset({crash.target}))]
            if live:
                self.crash_executor(self._rng.choice(live))

    def _kill_process(self, address: str) -> None:
        """The process at `address` dies now: what it had not done is lost, nothing
        reaches it any more, and every peer with a connection to it learns at once."""
        del self._nodes[address]
        self.network.detach(address)
        self.down.add(address)
        self._disconnect(lambda sender, to: to == address)

    def _disconnect(self, broken: Callable[[str, str], bool]) -> None:
        """Tell the live senders of the `broken` links that their peer is gone."""
        for sender, to in list(self.network.links):
            node = self._nodes.get(sender)
            if node is not None and broken(sender, to):
                node.engine.peer_event(to, PeerEvent.DISCONNECTED, self.clock.now)
                self._pump(node)

    def _watch_partition(self, part: Partition) -> None:
        def heartbeats_fail() -> None:
            if part in self.network.plan.partitions:  # not healed yet
                self._disconnect(lambda a, b: part.separates(a, b, self.clock.now))

        self.schedule(max(0.0, part.start + HEARTBEAT_TIMEOUT - self.clock.now), heartbeats_fail)

    def crash_master(self, restart_after: float | None = None) -> None:
        """The master process dies now; with `restart_after`, a fresh one starts at the
        same address that many seconds later (`restart_master`)."""
        if MASTER_ADDRESS in self.down:
            return
        self._kill_process(MASTER_ADDRESS)
        if restart_after is not None:
            self.schedule(restart_after, self.restart_master)

    def restart_master(self) -> None:
        if MASTER_ADDRESS in self.down:
            self.down.discard(MASTER_ADDRESS)
            self.master = self._start_master()

    def crash_agent(self, address: str, restart_after: float | None = None) -> None:
        """The agent process at `address` dies now (its executors keep running); with
        `restart_after`, it starts again that many seconds later (`restart_agent`)."""
        if address in self.down or address not in self._agent_infos:
            return
        self._kill_process(address)
        if restart_after is not None:
            self.schedule(restart_after, lambda: self.restart_agent(address))

    def restart_agent(self, address: str) -> None:
        if address in self.down:
            self.down.discard(address)
            index = list(self._agent_infos).index(address)
            self.agents[index] = self._start_agent(address)

    def crash_executor(self, driver: SimExecutorDriver) -> None:
        """The executor's process dies now (SIGKILL); its agent learns it as the next event."""
        self._exit_executor(driver, -9, "executor crashed")

    def crash_scheduler(self, driver: SimSchedulerDriver, restart_after: float | None = None) -> None:
        """The scheduler's process dies now; with `restart_after`, the framework's program
        starts again that many seconds later and fails over (`restart_scheduler`)."""
        if driver.status is not DriverStatus.RUNNING:
            return
        driver.status = DriverStatus.ABORTED
        self._kill_process(driver.address)
        if restart_after is not None:
            self.schedule(restart_after, lambda: self.restart_scheduler(driver))

    def restart_scheduler(self, driver: SimSchedulerDriver) -> None:
        if driver.address not in self.down:
            return
        self.down.discard(driver.address)
        driver.incarnation += 1
        old = driver.engine
        driver.engine = SchedulerEngine(old.info, f"{driver.host}/{driver.incarnation}", old.config,
                                        self._child_rng())
        self._start_scheduler(driver)

    # ---------------------------------------------------------------- actions
    def _pump(self, node: _Node) -> None:
        """Perform everything `node`'s engine asked for, including what the callbacks
        it triggers ask for in turn."""
        while actions := node.engine.take_actions():
            for action in actions:
                if isinstance(action, Send):
                    self.network.send(node.address, action.to, action.body, self.clock.now)
                else:
                    node.perform(action)

    def _master_performer(self, action: Any) -> None:
        if isinstance(action, REGISTRY_ACTIONS):
            apply_to_registry(self.registry, action)
        else:
            raise TypeError(f"the master engine emitted an unknown action {action!r}")

    def _agent_performer(self, agent: AgentEngine) -> Callable[[Any], None]:
        checkpoints = self.checkpoints[agent.transport]

        def perform(action: Any) -> None:
            if isinstance(action, LaunchExecutor):
                self._launch_executor(agent, action)
            elif isinstance(action, KillContainer):
                driver = self.executors.get(f"{agent.transport}/{action.container_id}")
                if driver is not None:
                    self._exit_executor(driver, -9 if action.grace == 0 else -15, "killed by the agent")
            elif isinstance(action, MasterLost):
                agent.connect(MASTER_ADDRESS, self.clock.now)
            elif isinstance(action, CHECKPOINT_ACTIONS):
                checkpoints.perform(action)
            else:
                raise TypeError(f"agent engine emitted an unknown action {action!r}")

        return perform

    def _launch_executor(self, agent: AgentEngine, launch: LaunchExecutor) -> None:
        if list(launch.executor.command.arguments) == list(agent.config.command_executor):
            executor: Executor = SimCommandExecutor()
        elif self.executor_factory is not None:
            executor = self.executor_factory(launch)
        else:
            raise ValueError(f"no simulated executor for custom executor {launch.executor.executor_id.value!r}: "
                             "pass SimCluster(executor_factory=...)")
        address = f"{agent.transport}/{launch.container_id}"
        env = launch.environment
        engine = ExecutorEngine(launch.framework_id, launch.executor.executor_id.value, agent.transport, address,
                                status_update_backoff=float(env["CORRAL_STATUS_UPDATE_BACKOFF"]),
                                rng=self._child_rng(), checkpoint=env["CORRAL_CHECKPOINT"] == "1",
                                recovery_timeout=float(env["CORRAL_RECOVERY_TIMEOUT"]))
        driver = SimExecutorDriver(self, executor, engine, agent.transport, launch.container_id)
        self.executors[address] = driver
        node = self._add_node(engine, address, driver._perform)
        engine.start(self.clock.now)
        self._pump(node)

    def _exit_executor(self, driver: SimExecutorDriver, status: int, message: str) -> None:
        """The executor's process ends now; its agent (if it is up) learns it as the
        next event, a restarted one when it recovers."""
        if driver.status is not DriverStatus.RUNNING:
            return
        driver.status = DriverStatus.STOPPED if status == 0 else DriverStatus.ABORTED
        self._remove_node(driver.engine)

        def exited() -> None:
            node = self._nodes.get(driver.agent_address)
            if node is not None:
                assert isinstance(node.engine, AgentEngine)
                node.engine.executor_exited(driver.container_id, status, message, self.clock.now)
                self._pump(node)

        self.schedule(0.0, exited)

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` `delay` simulated seconds from now, as an event of its own."""
        heapq.heappush(self._events, _Event(self.clock.now + delay, next(self._event_seq), fn))

    # ----------------------------------------------------------------- running
    def next_event_time(self) -> float | None:
        times = [t for t in (self.network.next_delivery(), *(n.engine.next_deadline() for n in self._nodes.values()))
                 if t is not None]
        if self._events:
            times.append(self._events[0].at)
        return min(times) if times else None

    def step(self) -> bool:
        """Jump to the next event and process it (one message, one engine's due
        timers, or one process event). False when nothing is left to happen."""
        when = self.next_event_time()
        if when is None:
            return False
        now = self.clock.advance_to(when)
        if self.network.deliver_next(now):
            return True
        for node in list(self._nodes.values()):
            deadline = node.engine.next_deadline()
            if deadline is not None and deadline <= now:
                node.engine.tick(now)
                self._pump(node)
                return True
        if self._events and self._events[0].at <= now:
            heapq.heappop(self._events).fn()
            return True
        raise RuntimeError(f"no event was due at {now} although one was announced")

    def run_until(self, predicate: Callable[[], bool], max_time: float = 600.0) -> bool:
        """Process events until `predicate()` holds (True) or `max_time` simulated
        seconds have passed (False; the clock then stands at the limit)."""
        limit = self.clock.now + max_time
        while not predicate():
            when = self.next_event_time()
            if when is None or when > limit:
                self.clock.advance_to(limit)
                return predicate()
            self.step()
        return True

    def run_for(self, seconds: float) -> None:
        """Process every event of the next `seconds` simulated seconds."""
        self.run_until(lambda: False, seconds)

    # ------------------------------------------------------------------ views
    def agent_by_id(self, agent_id: str) -> AgentEngine:
        return next(a for a in self.agents if a.agent_id == agent_id)

    def live_executors(self) -> list[SimExecutorDriver]:
        return [d for d in self.executors.values() if d.status is DriverStatus.RUNNING]

    def is_up(self, address: str) -> bool:
        """True when a process listens at `address` (not crashed, not exited)."""
        return address in self._nodes
