"""The agent engine: registration with the master, executors and their tasks, and the
status-update manager, as a sans-I/O state machine.

The status-update manager keeps one stream per (framework, task) on the `_core` ack
tracker: only the head of a stream is forwarded to the master; the next update goes
when the head is acknowledged; duplicates are dropped; heads are retried with truncated
exponential backoff and resent at once when the agent (re)registers. An executor's
update is acknowledged to the executor as soon as it is queued here.

Processes are not started here: the engine emits `LaunchExecutor` / `KillContainer`
actions and learns about exits through `executor_exited` (with the reason: a container
killed for exceeding its limits fails its tasks with REASON_CONTAINER_LIMITATION_*).
What a container may use (`ContainerLimits`: its executor's resources plus those of its
live tasks, persistent volumes excluded, plus an allowance for the command executor as
in Mesos) travels with `LaunchExecutor` and, as tasks come and go, is read by the
daemon through `container_limits()`.

Checkpointing (frameworks with `checkpoint` set): the engine emits checkpoint actions
(`CheckpointAgent`, `CheckpointFramework`, `CheckpointExecutor`, `CheckpointTask`,
`JournalAppend`, `CheckpointExecutorExited`, `DiscardFramework`, `DiscardRun`) that the daemon performs
synchronously, in order, before the actions after them. The engine emits a task's
`JournalAppend` of an update before the `Send`s that forward it or ack it to the
executor, and the `JournalAppend` of an ack before it forwards the stream's next
update: an update the executor saw acked is on disk ("durably queued").

Recovery (`recover`): a restarted agent is rebuilt from the checkpoints (frameworks,
executors, tasks, and each task's update stream replayed from its journal: pending =
journalled updates not acked). Recovered executors that are still running are asked to
reregister (`AgentReconnect`); they answer `ReregisterExecutor` with their tasks and
unacknowledged updates (de-duplicated by uuid against the replayed streams). Those
that do not within `recovery_timeout` are killed and their live tasks failed
(REASON_EXECUTOR_REREGISTRATION_TIMEOUT); executors found dead fail theirs with
REASON_EXECUTOR_TERMINATED; with `RecoverMode.CLEANUP` live executors are killed and
their tasks failed with REASON_AGENT_RESTARTED. Only then does the agent reregister with
the master, carrying its tasks and their unacknowledged updates.
"""
from __future__ import annotations

import enum
import logging
import random
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from corral import wire
from corral import _core
from corral.engines.base import Engine, MasterLost, on
from corral.engines.common import TERMINAL_STATES, for_framework, is_terminal, new_status
from corral.engines.status import STATE, UUID, UpdateRow, agent_id_suffix, row_of, status_row, update_of, with_latest
from corral.protocol import MessageType as T
from corral.protocol import PeerEvent
from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)
Reason = pb.TaskStatus.Reason
SOURCE_AGENT = pb.TaskStatus.SOURCE_AGENT
#: the kind of batch updates to the master travel in (see `Engine.send_row`)
_FORWARD = (wire.StatusUpdateMessage,)
_DUPLICATE = _core.AddResult.DUPLICATE
_HEAD = _core.AddResult.FORWARD
_ACKED = _core.AckResult.ACKED
#: missed pings (at the master's announced interval) before the agent looks for a master
PINGS_BEFORE_MASTER_LOST = 5


@dataclass
class AgentConfig:
    #: registration backoff: first try after random [0, b], then [0, b * 2^n], capped
    registration_backoff: float = 1.0
    registration_backoff_max: float = 60.0
    #: seconds without a ping from the master before the agent considers it lost (until
    #: the master announces its ping interval: then 5 intervals)
    ping_timeout: float = 75.0
    status_update_backoff: float = 10.0
    status_update_backoff_max: float = 600.0
    #: per task, the uuids of the last this many updates acknowledged, to drop an
    #: executor's retries of them (0 to 64). An executor driver sends a task's next
    #: update only once the last is acknowledged, over one ordered connection, so a
    #: retry repeats one of the last few; each uuid more is 16 bytes per task, and at 64
    #: the memories of 10 000 tasks no longer fit the cache (benches/README.md)
    acknowledged_uuids_per_task: int = 8
    executor_registration_timeout: float = 60.0
    #: grace period between SIGTERM and SIGKILL when the agent itself kills a container
    shutdown_grace_period: float = 3.0
    #: argv of the built-in command executor
    command_executor: tuple[str, ...] = ("python3", "-m", "corral.executors.command")
    #: after a restart, how long recovered executors get to reregister
    recovery_timeout: float = 2.0
    #: how long an executor of a checkpointing framework waits for a lost agent to come back
    executor_recovery_timeout: float = 900.0
    #: allowance added to a command executor's limits for the executor process itself
    #: (Mesos adds 0.1 cpus and 32 MB; the Python command executor alone is ~35 MB resident)
    command_executor_cpus: float = 0.1
    command_executor_mem: float = 64.0


class Connection(enum.Enum):
    DISCONNECTED = "disconnected"
    REGISTERING = "registering"
    REGISTERED = "registered"


_REGISTERED = Connection.REGISTERED  # (an Enum member read from its class costs a Python call)


class ExecutorPhase(enum.Enum):
    LAUNCHING = "launching"
    #: recovered from checkpoints, asked to reregister, not back yet
    RECOVERING = "recovering"
    REGISTERED = "registered"
    TERMINATING = "terminating"


class RecoverMode(enum.Enum):
    """What a restarted agent does with the executors it finds in its checkpoints."""

    RECONNECT = "reconnect"
    CLEANUP = "cleanup"


class JournalKind(enum.IntEnum):
    UPDATE = 1
    ACK = 2


@dataclass(slots=True)
class JournalRecord:
    """One entry of a task's update journal: an update (with its uuid), or the uuid of
    an acknowledged update."""

    kind: JournalKind
    uuid: bytes
    update: pb.StatusUpdate | None = None


@dataclass
class RecoveredTask:
    info: pb.TaskInfo
    journal: list[JournalRecord]


@dataclass
class RecoveredRun:
    """One checkpointed executor run (container) and its tasks."""

    framework_id: str
    info: pb.ExecutorInfo
    container_id: str
    command_executor: bool
    transport: str
    pid: int
    start_time: int
    exited: bool
    tasks: list[RecoveredTask]


@dataclass
class RecoveredState:
    agent: pb.AgentInfo
    frameworks: dict[str, pb.FrameworkInfo]
    runs: list[RecoveredRun]


@dataclass(frozen=True, slots=True)
class ContainerLimits:
    """What a container may use: MB of memory, MB of sandbox disk, cpus (0: none given)."""

    mem_mb: float = 0.0
    disk_mb: float = 0.0
    cpus: float = 0.0


def resource_limits(resources: Any) -> ContainerLimits:
    """The mem, disk and cpus of `resources`; persistent volumes are not sandbox disk."""
    totals = {"mem": 0.0, "disk": 0.0, "cpus": 0.0}
    for r in resources:
        if r.name in totals and not (r.name == "disk" and r.HasField("disk") and r.disk.HasField("persistence")):
            totals[r.name] += r.scalar.value
    return ContainerLimits(totals["mem"], totals["disk"], totals["cpus"])


@dataclass(slots=True)
class LaunchExecutor:
    """Start an executor process for `executor` in a fresh sandbox."""

    container_id: str
    framework_id: str
    executor: pb.ExecutorInfo
    environment: dict[str, str]
    #: the framework checkpoints: record the process id for recovery
    checkpoint: bool = False
    #: what the container may use at first (with the task it is launched for)
    limits: ContainerLimits = ContainerLimits()


@dataclass(slots=True)
class KillContainer:
    """SIGTERM the container's process group, SIGKILL after `grace` seconds."""

    container_id: str
    grace: float


@dataclass(slots=True)
class CheckpointAgent:
    info: pb.AgentInfo


@dataclass(slots=True)
class UpdateVolumes:
    """Create the directories of new persistent volumes and delete destroyed ones; each
    volume is (role, persistence id)."""

    create: list[tuple[str, str]]
    destroy: list[tuple[str, str]]


@dataclass(slots=True)
class LinkVolumes:
    """Make persistent volumes visible in a container's sandbox: (role, persistence id,
    container path) each."""

    container_id: str
    volumes: list[tuple[str, str, str]]


def persistent_volumes(resources: Any) -> list[tuple[str, str, str]]:
    """(role, persistence id, container path) of every persistent volume in `resources`."""
    out = []
    for r in resources:
        if r.HasField("disk") and r.disk.HasField("persistence"):
            role = r.reservations[-1].role if r.reservations else r.role
            out.append((role, r.disk.persistence.id, r.disk.volume.container_path))
    return out


@dataclass(slots=True)
class CheckpointFramework:
    info: pb.FrameworkInfo


@dataclass(slots=True)
class DiscardFramework:
    """The framework was shut down: forget its checkpoints."""

    framework_id: str


@dataclass(slots=True)
class DiscardRun:
    """An executor run is over and every update of its tasks was acknowledged: nothing
    in its checkpoint is needed by a restart any more."""

    framework_id: str
    executor_id: str
    container_id: str


@dataclass(slots=True)
class CheckpointExecutor:
    framework_id: str
    info: pb.ExecutorInfo
    container_id: str
    command_executor: bool
    transport: str


@dataclass(slots=True)
class CheckpointExecutorExited:
    framework_id: str
    executor_id: str
    container_id: str


@dataclass(slots=True)
class CheckpointTask:
    framework_id: str
    executor_id: str
    container_id: str
    info: pb.TaskInfo


@dataclass(slots=True)
class JournalAppend:
    framework_id: str
    executor_id: str
    container_id: str
    task_id: str
    record: JournalRecord


#: every action that must reach the disk before the actions after it are performed
CHECKPOINT_ACTIONS = (CheckpointAgent, CheckpointFramework, DiscardFramework, CheckpointExecutor,
                      CheckpointExecutorExited, CheckpointTask, JournalAppend, DiscardRun)


@dataclass(slots=True)
class Executor:
    info: pb.ExecutorInfo
    framework_id: str
    container_id: str
    command_executor: bool
    phase: ExecutorPhase = ExecutorPhase.LAUNCHING
    transport: str = ""
    queued: list[pb.TaskInfo] = field(default_factory=list)
    task_ids: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return self.info.executor_id.value


#: what the agent keeps of a task (a C type in the compiled build: the status path's
#: loops read and write its fields as struct fields)
Task = _core.AgentTask


class TaskTable(MutableMapping[tuple[str, str], Task]):
    """The agent's tasks by (framework id, task id), held as each framework's tasks by
    task id (`by_framework`, what the status path's loops take): a message's rows are
    one framework's, found once, then each task by its id, a str key that hits by
    identity (the decoders hand out one str per task id), instead of a (framework id,
    task id) tuple made, hashed and compared with the stored one for every row."""

    __slots__ = ("by_framework", "_count")

    def __init__(self) -> None:
        self.by_framework: dict[str, dict[str, Task]] = {}
        self._count = 0

    def __getitem__(self, key: tuple[str, str]) -> Task:
        task = self.get(key)
        if task is None:
            raise KeyError(key)
        return task

    def get(self, key: tuple[str, str], default: Any = None) -> Any:  # (the Mapping one goes through __getitem__)
        tasks = self.by_framework.get(key[0])
        return default if tasks is None else tasks.get(key[1], default)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        tasks = self.by_framework.get(key[0])
        return tasks is not None and key[1] in tasks

    def __setitem__(self, key: tuple[str, str], task: Task) -> None:
        tasks = self.by_framework.setdefault(key[0], {})
        if key[1] not in tasks:
            self._count += 1
        tasks[key[1]] = task

    def __delitem__(self, key: tuple[str, str]) -> None:
        tasks = self.by_framework.get(key[0])
        if tasks is None or key[1] not in tasks:
            raise KeyError(key)
        del tasks[key[1]]
        self._count -= 1
        if not tasks:
            del self.by_framework[key[0]]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for fid, tasks in self.by_framework.items():
            for tid in tasks:
                yield (fid, tid)

    def __len__(self) -> int:
        return self._count


class AgentEngine(Engine):
    def __init__(self, info: pb.AgentInfo, transport: str, config: AgentConfig | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__()
        self.info = info
        self.transport = transport
        self.config = config or AgentConfig()
        self.rng = rng or random.Random()
        #: identifies this agent process's registrations (see RegisterAgent.session)
        self.session = self.rng.randbytes(8)
        self._suffix: tuple[str, bytes] = ("", b"")
        self.connection = Connection.DISCONNECTED
        self.master: str | None = None
        self.agent_id: str | None = info.id.value if info.HasField("id") else None
        self.frameworks: dict[str, pb.FrameworkInfo] = {}
        self.executors: dict[tuple[str, str], Executor] = {}
        self.containers: dict[str, tuple[str, str]] = {}
        self.tasks = TaskTable()
        #: checkpointed runs whose executor has ended -> (framework, executor, the tasks
        #: whose updates are not all acknowledged yet); see `_run_ended`
        self._ended_runs: dict[str, tuple[str, str, set[str]]] = {}
        #: launches from the master that reached us before our first AgentRegistered
        #: (that reply was lost or is late): run once it names us, dropped otherwise
        self._held_launches: list[pb.RunTask] = []
        self.updates = _core.AckTracker(self.config.status_update_backoff, self.config.status_update_backoff_max,
                                       remember=self.config.acknowledged_uuids_per_task)
        self.updates.pause()
        self._registration_backoff = self.config.registration_backoff
        self.ping_timeout = self.config.ping_timeout
        self._container_ids = 0
        #: True from `recover` until recovered executors have reregistered or timed out
        self.recovering = False
        self._agent_checkpointed = False
        self.counters: dict[str, int] = {
            "status_updates_received": 0,
            "duplicate_status_updates": 0,
            "status_updates_forwarded": 0,
            "acks_received": 0,
            "stale_acks": 0,
            "forced_reregistrations": 0,
            "messages_from_unknown": 0,
            "tasks_launched": 0,
            "executors_recovered": 0,
            "executors_reregistered": 0,
        }

    # -------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        a = super().next_deadline()
        b = self.updates.next_deadline()
        if a is None:
            return b
        return a if b is None else min(a, b)

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.connection is _REGISTERED:
            self._forward_heads(self.updates.due(now))

    def on_timer(self, key: Any, now: float) -> None:
        kind = key[0]
        if kind == "register":
            if self.connection is Connection.REGISTERING:
                self._send_registration()
                self._registration_backoff = min(self._registration_backoff * 2, self.config.registration_backoff_max)
                self.set_timer(("register",), now + self.rng.uniform(0, self._registration_backoff))
        elif kind == "ping_timeout":
            self._master_lost(now)
        elif kind == "executor_registration":
            executor = self.executors.get(key[1])
            if executor is not None and executor.phase is ExecutorPhase.LAUNCHING:
                self._fail_tasks(executor, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                                 f"executor did not register within {self.config.executor_registration_timeout:g}s", now)
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, 0.0))
        elif kind == "recovery":
            self._finish_recovery(now)
        else:
            super().on_timer(key, now)

    # -------------------------------------------------------- registration
    def connect(self, master: str, now: float) -> None:
        """Register (or reregister) with the master at transport address `master`."""
        if self.master and self.master != master:
            self.counters.setdefault("master_changes", 0)
            self.counters["master_changes"] += 1
            self._held_launches.clear()
        self.master = master
        self.connection = Connection.REGISTERING
        self.updates.pause()
        self._registration_backoff = self.config.registration_backoff
        if not self.recovering:  # else: once recovered executors are back (_finish_recovery)
            self.set_timer(("register",), now + self.rng.uniform(0, self._registration_backoff))

    def _send_registration(self) -> None:
        info = pb.AgentInfo()
        info.CopyFrom(self.info)
        info.transport = self.transport
        if self.agent_id is None:
            self.send(self.master, pb.RegisterAgent(agent=info, version=_version(), session=self.session))
            return
        info.id.value = self.agent_id
        msg = pb.ReregisterAgent(agent=info, version=_version())
        for (fid, tid), task in self.tasks.items():
            report = msg.tasks.add(task=task.info, state=task.state)
            report.framework_id.value = fid
            report.unacknowledged.extend(update_of(row, self.agent_id) for _, row in self.updates.pending((fid, tid)))
        for executor in self.executors.values():
            state = msg.executors.add(executor_info=executor.info)
            state.framework_id.value = executor.framework_id
        msg.frameworks.extend(self.frameworks.values())
        self.send(self.master, msg)

    def _from_master(self, sender: str) -> bool:
        if sender != self.master:
            self.counters["messages_from_unknown"] += 1
            return False
        return True

    @on(T.AGENT_REGISTERED)
    def _registered(self, sender: str, msg: pb.AgentRegistered, now: float) -> None:
        if self._from_master(sender):
            self._become_registered(msg.agent_id.value, msg.ping_interval_seconds, now)

    @on(T.AGENT_REREGISTERED)
    def _reregistered(self, sender: str, msg: pb.AgentReregistered, now: float) -> None:
        if self._from_master(sender):
            self._become_registered(msg.agent_id.value, msg.ping_interval_seconds, now)

    def _become_registered(self, agent_id: str, ping_interval: float, now: float) -> None:
        if self.connection is Connection.REGISTERED:
            return  # a duplicate reply
        if self._agent_checkpointed and agent_id != self.agent_id:
            self.info.id.value = agent_id
            self.emit(CheckpointAgent(_copy(self.info)))
        log.info("registered with master %s as agent %s", self.master, agent_id)
        self.agent_id = agent_id
        self.info.id.value = agent_id
        self.connection = Connection.REGISTERED
        self.cancel_timer(("register",))
        if ping_interval > 0:
            # the master gives up after 5 missed pongs; so do we, after 5 missed pings
            self.ping_timeout = ping_interval * PINGS_BEFORE_MASTER_LOST
        self.set_timer(("ping_timeout",), now + self.ping_timeout)
        self._forward_heads(self.updates.resume(now))
        held, self._held_launches = self._held_launches, []
        for launch in held:
            if launch.task.agent_id.value == agent_id:
                self._run_task(self.master, launch, now)

    def peer_event(self, address: str, event: PeerEvent, now: float) -> None:
        if address == self.master and event is PeerEvent.DISCONNECTED and self.connection is not Connection.DISCONNECTED:
            self._master_lost(now)

    def _master_lost(self, now: float) -> None:
        log.info("lost master %s; registering again", self.master)
        self.connection = Connection.DISCONNECTED
        self.cancel_timer(("ping_timeout",))
        self.updates.pause()
        self.emit(MasterLost())

    @on(T.PING)
    def _ping(self, sender: str, msg: pb.Ping, now: float) -> None:
        if not self._from_master(sender) or self.agent_id is None:
            return
        if self.connection is not Connection.REGISTERED:
            return
        if not msg.connected:
            # the master set us aside (our connection dropped on its side) while we think
            # we are registered: register again, which reconciles our tasks with it
            self.counters["forced_reregistrations"] += 1
            self._master_lost(now)
            return
        self.set_timer(("ping_timeout",), now + self.ping_timeout)
        self.send(sender, pb.Pong(agent_id=pb.AgentID(value=self.agent_id)))

    # ------------------------------------------------------------ launching
    @on(T.RUN_TASK)
    def _run_task(self, sender: str, msg: pb.RunTask, now: float) -> None:
        if not self._from_master(sender):
            return
        if self.connection is Connection.REGISTERING and self.agent_id is None:
            # our master registered us (it launches on us) but its reply has not reached
            # us yet: run the task once it does. The master sends each launch once.
            self._held_launches.append(msg)
            return
        if self.connection is not Connection.REGISTERED:
            log.info("launch of task %s dropped while reregistering (the master learns from our report)",
                     msg.task.task_id.value)
            return
        fid = msg.framework.id.value
        task = msg.task
        tid = _core.canonical_task_id(task.task_id.value)
        if (fid, tid) in self.tasks and not is_terminal(self.tasks[(fid, tid)].state):
            return  # a duplicate launch
        checkpoint = msg.framework.checkpoint
        if checkpoint:
            if not self._agent_checkpointed:
                self._agent_checkpointed = True
                self.emit(CheckpointAgent(_copy(self.info)))
            if self.frameworks.get(fid) != msg.framework:
                self.emit(CheckpointFramework(msg.framework))
        self.frameworks[fid] = msg.framework
        self.counters["tasks_launched"] += 1
        if task.HasField("command"):
            info = pb.ExecutorInfo(name=f"command executor for {tid}")
            info.executor_id.value = tid
            info.framework_id.value = fid
            info.command.shell = False
            info.command.value = self.config.command_executor[0]
            info.command.arguments.extend(self.config.command_executor)
            command_executor = True
        else:
            info = pb.ExecutorInfo()
            info.CopyFrom(task.executor)
            info.framework_id.value = fid
            command_executor = False
        eid = info.executor_id.value
        executor = self.executors.get((fid, eid))
        if executor is None or executor.phase is ExecutorPhase.TERMINATING:
            self._container_ids += 1
            container_id = f"{eid}.{self._container_ids}.{self.rng.getrandbits(32):08x}"
            executor = Executor(info, fid, container_id, command_executor)
            self.executors[(fid, eid)] = executor
            self.containers[container_id] = (fid, eid)
            if checkpoint:
                self.emit(CheckpointExecutor(fid, info, container_id, command_executor, ""))
            self.emit(LaunchExecutor(container_id, fid, info, self._executor_environment(msg.framework, info, container_id),
                                     checkpoint, self._limits(executor, [task])))
            self.set_timer(("executor_registration", (fid, eid)), now + self.config.executor_registration_timeout)
        volumes = persistent_volumes(list(task.resources) + list(info.resources))
        if volumes:
            self.emit(LinkVolumes(executor.container_id, volumes))
        if checkpoint:
            self.emit(CheckpointTask(fid, eid, executor.container_id, task))
        self.tasks[(fid, tid)] = Task(task, fid, eid, container_id=executor.container_id, checkpoint=checkpoint)
        executor.task_ids.add(tid)
        if executor.phase is ExecutorPhase.REGISTERED:
            self.send(executor.transport, pb.RunExecutorTask(framework=msg.framework, task=task))
        else:
            executor.queued.append(task)

    @on(T.RECONCILE_TASKS)
    def _reconcile_tasks(self, sender: str, msg: pb.ReconcileTasks, now: float) -> None:
        """The master has tasks for us that our reregistration report lacked. A launch
        that crossed the report has arrived by now (same ordered connection): such a task
        we have, and its own updates speak for it; any other is answered TASK_DROPPED,
        reliably (it is retried until acknowledged, and then forgotten)."""
        if not self._from_master(sender) or self.connection is not Connection.REGISTERED:
            return
        fid = msg.framework_id.value
        for task_id in msg.task_ids:
            tid = _core.canonical_task_id(task_id.value)
            if (fid, tid) in self.tasks:
                continue
            info = pb.TaskInfo(name=tid, task_id=task_id, agent_id=pb.AgentID(value=self.agent_id or ""))
            self.tasks[(fid, tid)] = Task(info, fid, "")  # holds the stream of the update below
            self._agent_update(fid, tid, "", for_framework(msg.framework, pb.TASK_DROPPED),
                               Reason.REASON_RECONCILIATION, "the agent does not know this task", now)

    @on(T.CHECKPOINT_RESOURCES)
    def _checkpoint_resources(self, sender: str, msg: pb.CheckpointResources, now: float) -> None:
        """Operations changed this agent's resources (reservations, volumes): keep them,
        so they survive a restart and are reported when the agent reregisters."""
        if not self._from_master(sender):
            return
        before = {v[:2] for v in persistent_volumes(self.info.resources)}
        after = {v[:2] for v in persistent_volumes(msg.resources)}
        del self.info.resources[:]
        self.info.resources.extend(msg.resources)
        self._agent_checkpointed = True
        self.emit(CheckpointAgent(_copy(self.info)))
        if before != after:
            self.emit(UpdateVolumes(sorted(after - before), sorted(before - after)))

    def _executor_environment(self, framework: pb.FrameworkInfo, info: pb.ExecutorInfo, container_id: str) -> dict[str, str]:
        return {
            "CORRAL_FRAMEWORK_ID": framework.id.value,
            "CORRAL_EXECUTOR_ID": info.executor_id.value,
            "CORRAL_CONTAINER_ID": container_id,
            "CORRAL_AGENT_ID": self.agent_id or "",
            "CORRAL_AGENT_ENDPOINT": self.transport,
            "CORRAL_CHECKPOINT": "1" if framework.checkpoint else "0",
            "CORRAL_RECOVERY_TIMEOUT": str(self.config.executor_recovery_timeout),
            "CORRAL_STATUS_UPDATE_BACKOFF": str(self.config.status_update_backoff),
        }

    @on(T.REGISTER_EXECUTOR)
    def _register_executor(self, sender: str, msg: pb.RegisterExecutor, now: float) -> None:
        if not self._from_itself(sender, msg.transport):
            return
        key = (msg.framework_id.value, msg.executor_id.value)
        executor = self.executors.get(key)
        if executor is None or executor.phase is ExecutorPhase.TERMINATING:
            self.send(msg.transport, pb.ShutdownExecutor(framework_id=msg.framework_id, executor_id=msg.executor_id))
            return
        # (a second registration from the same executor means our reply was lost: answer again;
        # a recovered executor that never registered before the restart registers afresh)
        self._set_transport(executor, msg.transport)
        executor.phase = ExecutorPhase.REGISTERED
        self.cancel_timer(("executor_registration", key))
        self.send(
            msg.transport,
            pb.ExecutorRegistered(
                executor_info=executor.info,
                framework_id=msg.framework_id,
                framework_info=self.frameworks[executor.framework_id],
                agent_id=pb.AgentID(value=self.agent_id or ""),
                agent_info=self.info,
            ),
        )
        framework = self.frameworks[executor.framework_id]
        for task in executor.queued:
            self.send(executor.transport, pb.RunExecutorTask(framework=framework, task=task))
        executor.queued.clear()
        self._recovery_progress(now)

    def _from_itself(self, sender: str, transport: str) -> bool:
        """Whether an executor's (re)registration names the connection it came from:
        the executor is known by that connection from then on, so one naming another
        (a stranger's, or none) is dropped and counted."""
        if transport == sender:
            return True
        self.counters["messages_from_unknown"] += 1
        log.warning("executor registration from %s names transport %r: dropped", sender, transport)
        return False

    def _set_transport(self, executor: Executor, transport: str) -> None:
        if executor.transport != transport:
            executor.transport = transport
            if self.frameworks[executor.framework_id].checkpoint:
                self.emit(CheckpointExecutor(executor.framework_id, executor.info, executor.container_id,
                                             executor.command_executor, transport))

    # ------------------------------------------------------------- recovery
    def recover(self, state: RecoveredState, live: set[str], mode: RecoverMode, now: float) -> None:
        """Rebuild the agent from its checkpoints, before `connect`. `live` holds the
        container ids whose executor process is still running."""
        self.recovering = True
        self._agent_checkpointed = True
        if state.agent.HasField("id"):
            self.agent_id = state.agent.id.value
            self.info.id.value = self.agent_id
        if state.agent.resources:
            # reservations and volumes made through operations live in the checkpoint
            del self.info.resources[:]
            self.info.resources.extend(state.agent.resources)
        self.frameworks.update(state.frameworks)
        for run in state.runs:
            fid, eid = run.framework_id, run.info.executor_id.value
            executor = None
            if not run.exited:
                executor = Executor(run.info, fid, run.container_id, run.command_executor,
                                    phase=ExecutorPhase.RECOVERING, transport=run.transport)
            recovered_ids = set()
            for recovered in run.tasks:
                task = self._recover_task(fid, eid, run.container_id, recovered, now)
                if task is not None:
                    recovered_ids.add(task.info.task_id.value)
                    if executor is not None and not run.transport:
                        executor.queued.append(task.info)  # never registered: never sent
            if executor is None:
                self._run_ended(fid, eid, run.container_id, recovered_ids)
                continue
            executor.task_ids.update(recovered_ids)
            if run.container_id not in live:
                self._fail_tasks(executor, Reason.REASON_EXECUTOR_TERMINATED,
                                 "the executor process was gone when the agent restarted", now)
                self.emit(CheckpointExecutorExited(fid, eid, run.container_id))
                self._run_ended(fid, eid, run.container_id, executor.task_ids)
                continue
            self.executors[(fid, eid)] = executor
            self.containers[run.container_id] = (fid, eid)
            self.counters["executors_recovered"] += 1
            if mode is RecoverMode.CLEANUP:
                self._fail_tasks(executor, Reason.REASON_AGENT_RESTARTED,
                                 "the agent restarted with --recover cleanup and killed the executor", now)
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, 0.0))
            elif executor.transport:
                self.send(executor.transport, pb.AgentReconnect(transport=self.transport))
        self.set_timer(("recovery",), now + self.config.recovery_timeout)
        self._recovery_progress(now)

    def _recover_task(self, fid: str, eid: str, container_id: str, recovered: RecoveredTask, now: float) -> Task | None:
        """The task with its update stream replayed from the journal; None when its
        terminal update was acknowledged (the task is over)."""
        key = (fid, _core.canonical_task_id(recovered.info.task_id.value))
        task = Task(recovered.info, fid, eid, container_id=container_id, checkpoint=True)
        for record in recovered.journal:
            if record.kind is JournalKind.UPDATE:
                assert record.update is not None
                row = row_of(record.update)
                if self.updates.add(key, record.uuid, row, now) is not _DUPLICATE:
                    task.state = row[STATE]
            else:
                self.updates.ack(key, record.uuid, now)
        if is_terminal(task.state) and self.updates.head(key) is None:
            self.updates.remove(key)
            return None
        self.tasks[key] = task
        return task

    def _recovery_progress(self, now: float) -> None:
        if self.recovering and not any(e.phase is ExecutorPhase.RECOVERING for e in self.executors.values()):
            self._finish_recovery(now)

    def _finish_recovery(self, now: float) -> None:
        """Executors that did not reregister are terminated; then register with the master."""
        self.cancel_timer(("recovery",))
        for executor in list(self.executors.values()):
            if executor.phase is ExecutorPhase.RECOVERING:
                self._fail_tasks(executor, Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                                 f"executor did not reregister within {self.config.recovery_timeout:g}s "
                                 "of the agent restarting", now)
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, 0.0))
        self.recovering = False
        if self.connection is Connection.REGISTERING:
            self.set_timer(("register",), now + self.rng.uniform(0, self._registration_backoff))

    @on(T.REREGISTER_EXECUTOR)
    def _reregister_executor(self, sender: str, msg: pb.ReregisterExecutor, now: float) -> None:
        if not self._from_itself(sender, msg.transport):
            return
        key = (msg.framework_id.value, msg.executor_id.value)
        executor = self.executors.get(key)
        if executor is None or executor.phase not in (ExecutorPhase.RECOVERING, ExecutorPhase.REGISTERED):
            self.send(msg.transport, pb.ShutdownExecutor(framework_id=msg.framework_id, executor_id=msg.executor_id))
            return
        if executor.phase is ExecutorPhase.RECOVERING:
            self.counters["executors_reregistered"] += 1
        executor.phase = ExecutorPhase.REGISTERED
        self._set_transport(executor, msg.transport)
        agent_id = self.agent_id or ""
        self.send(msg.transport, pb.ExecutorReregistered(agent_id=pb.AgentID(value=agent_id), agent_info=self.info))
        for update in msg.updates:
            # journalled (unless a duplicate by uuid) before it is acked, as in _executor_status_update
            tid = update.status.task_id.value
            task = self.tasks.get((key[0], tid))
            if update.uuid and task is not None:
                update.status.agent_id.value = agent_id
                row = row_of(update)
                if self._enqueue(task, (key[0], tid), row, now):
                    self._forward([row])
            self.send_row(msg.transport, (wire.ExecutorStatusUpdateAck, agent_id, key[0]), (tid, update.uuid))
        known = {t.task_id.value for t in msg.tasks}
        framework = self.frameworks[executor.framework_id]
        for task in self._live_tasks(executor):
            if task.info.task_id.value not in known:  # launched, but the executor never got it
                self.send(msg.transport, pb.RunExecutorTask(framework=framework, task=task.info))
        executor.queued.clear()
        self._recovery_progress(now)

    # -------------------------------------------------------------- killing
    @on(T.KILL_TASK)
    def _kill_task(self, sender: str, msg: pb.KillTask, now: float) -> None:
        if not self._from_master(sender):
            return
        fid, tid = msg.framework_id.value, msg.task_id.value
        task = self.tasks.get((fid, tid))
        if task is None:
            self._agent_update(fid, tid, "", pb.TASK_LOST, Reason.REASON_RECONCILIATION,
                               "cannot kill an unknown task", now, known=False)
            return
        if is_terminal(task.state):
            return
        executor = self.executors.get((fid, task.executor_id))
        if executor is None:
            return
        queued = [t for t in executor.queued if t.task_id.value == tid]
        if queued or executor.phase is not ExecutorPhase.REGISTERED:
            executor.queued = [t for t in executor.queued if t.task_id.value != tid]
            self._agent_update(fid, tid, executor.id, pb.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                               "killed before the executor received it", now)
            if not self._live_tasks(executor):
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, 0.0))
            return
        kill = pb.KillExecutorTask(framework_id=msg.framework_id, task_id=msg.task_id)
        if msg.HasField("kill_policy"):
            kill.kill_policy.CopyFrom(msg.kill_policy)
        self.send(executor.transport, kill)

    def _live_tasks(self, executor: Executor) -> list[Task]:
        return [
            t for tid in executor.task_ids
            if (t := self.tasks.get((executor.framework_id, tid))) is not None and not is_terminal(t.state)
        ]

    @on(T.SHUTDOWN_FRAMEWORK)
    def _shutdown_framework(self, sender: str, msg: pb.ShutdownFramework, now: float) -> None:
        if not self._from_master(sender):
            return
        fid = msg.framework_id.value
        for (efid, _), executor in list(self.executors.items()):
            if efid == fid and executor.phase is not ExecutorPhase.TERMINATING:
                if executor.transport:
                    self.send(executor.transport, pb.ShutdownExecutor(framework_id=msg.framework_id,
                                                                      executor_id=executor.info.executor_id))
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, self.config.shutdown_grace_period))
        for tid in list(self.tasks.by_framework.get(fid, ())):
            del self.tasks[(fid, tid)]
            self.updates.remove((fid, tid))
        for container_id in [c for c, run in self._ended_runs.items() if run[0] == fid]:
            del self._ended_runs[container_id]  # DiscardFramework takes their checkpoints
        info = self.frameworks.pop(fid, None)
        if info is not None and info.checkpoint:
            self.emit(DiscardFramework(fid))

    # ------------------------------------------------------- executor exits
    def executor_exited(self, container_id: str, status: int, message: str, now: float,
                        reason: int = Reason.REASON_EXECUTOR_TERMINATED) -> None:
        """The container's process has ended (exit status, or -signal); `reason` is why,
        for the live tasks it fails (e.g. REASON_CONTAINER_LIMITATION_MEMORY)."""
        key = self.containers.pop(container_id, None)
        if key is None:
            return
        executor = self.executors.get(key)
        if executor is None or executor.container_id != container_id:
            return
        self.cancel_timer(("executor_registration", key))
        self._fail_tasks(executor, reason, message or f"executor exited with status {status}", now)
        del self.executors[key]
        framework = self.frameworks.get(key[0])
        if framework is not None and framework.checkpoint:
            self.emit(CheckpointExecutorExited(key[0], key[1], container_id))
            self._run_ended(key[0], key[1], container_id, executor.task_ids)
        self._recovery_progress(now)
        if self.connection is Connection.REGISTERED and self.agent_id:
            self.send(self.master, pb.ExitedExecutor(
                agent_id=pb.AgentID(value=self.agent_id), framework_id=pb.FrameworkID(value=key[0]),
                executor_id=pb.ExecutorID(value=key[1]), status=status))

    def executor_launch_failed(self, container_id: str, message: str, now: float) -> None:
        key = self.containers.pop(container_id, None)
        executor = self.executors.pop(key, None) if key else None
        if executor is not None:
            self.cancel_timer(("executor_registration", key))
            self._fail_tasks(executor, Reason.REASON_CONTAINER_LAUNCH_FAILED, message, now)

    # ------------------------------------------------------------- limits
    def container_limits(self) -> dict[str, ContainerLimits]:
        """What each running container may use now (not those being killed)."""
        return {
            e.container_id: self._limits(e) for e in self.executors.values()
            if e.phase is not ExecutorPhase.TERMINATING and e.container_id in self.containers
        }

    def _limits(self, executor: Executor, extra: list[pb.TaskInfo] | None = None) -> ContainerLimits:
        resources = list(executor.info.resources)
        for task in self._live_tasks(executor):
            resources.extend(task.info.resources)
        for info in extra or []:
            resources.extend(info.resources)
        limits = resource_limits(resources)
        if executor.command_executor:
            limits = ContainerLimits(limits.mem_mb + self.config.command_executor_mem, limits.disk_mb,
                                     limits.cpus + self.config.command_executor_cpus)
        return limits

    def _fail_tasks(self, executor: Executor, reason: int, message: str, now: float) -> None:
        for task in self._live_tasks(executor):
            self._agent_update(executor.framework_id, task.info.task_id.value, executor.id,
                               pb.TASK_FAILED, reason, message, now)
        executor.queued.clear()

    # -------------------------------------------------------- status updates
    def _agent_update(self, fid: str, tid: str, eid: str, state: int, reason: int, message: str, now: float,
                      *, known: bool = True) -> None:
        """An agent-generated, reliable update (it carries a uuid and waits for an ack)."""
        status = new_status(tid, state, SOURCE_AGENT, now, reason=reason, message=message,
                            agent_id=self.agent_id, executor_id=eid or None, uuid=self.rng.randbytes(16))
        task = self.tasks.get((fid, tid)) if known else None
        if task is not None and task.container_id:
            status.container_id = task.container_id
        row = status_row(fid, status)
        if task is None:
            # no task record: forward once, best effort
            if self.connection is Connection.REGISTERED:
                self.send_row(self.master, _FORWARD, row)
            return
        if self._enqueue(task, (fid, tid), row, now):
            self._forward([row])

    @on(T.EXECUTOR_STATUS_UPDATE)
    def _executor_status_update(self, sender: str, msg: wire.ExecutorStatusUpdate, now: float) -> None:
        """Updates from an executor: each is queued on its task's stream (journalled
        first when the framework checkpoints) and acked to the executor; the new heads
        go to the master."""
        agent_id = self.agent_id or ""
        heads, journal, acks, unknown, duplicates = _core.agent_intake(
            msg.rows, sender, self.executors, self.tasks.by_framework, self.updates, self._status_suffix(agent_id),
            now)
        for task, row in journal:  # on disk before the forward and before the executor's ack
            self._journal_update(task, row)
        if self.connection is _REGISTERED:
            self._forward(heads)
        for fid, rows in acks.items():
            self.send_rows(sender, (wire.ExecutorStatusUpdateAck, agent_id, fid), rows)
        counters = self.counters
        counters["status_updates_received"] += len(msg.rows) - unknown
        if unknown:
            counters["messages_from_unknown"] += unknown
        if duplicates:
            counters["duplicate_status_updates"] += duplicates

    def _status_suffix(self, agent_id: str) -> bytes:
        """What to append to an executor's serialised status to stamp our agent id."""
        if self._suffix[0] != agent_id:
            self._suffix = (agent_id, agent_id_suffix(agent_id) if agent_id else b"")
        return self._suffix[1]

    def _enqueue(self, task: Task, key: tuple[str, str], row: UpdateRow, now: float) -> bool:
        """Queue a reliable update of `task` (journalled first when the framework
        checkpoints). True when the caller must forward it now (`_forward`): it heads
        its stream and the master is there."""
        uuid = row[UUID]
        result = self.updates.add(key, uuid, row, now)
        if result is _DUPLICATE:
            self.counters["duplicate_status_updates"] += 1
            return False
        task.state = row[STATE]
        if task.checkpoint:  # on disk before the forward and before the executor's ack
            self._journal_update(task, row)
        return result is _HEAD and self.connection is _REGISTERED

    def _journal_update(self, task: Task, row: UpdateRow) -> None:
        self.emit(JournalAppend(task.framework_id, task.executor_id, task.container_id, row[2],
                                JournalRecord(JournalKind.UPDATE, row[UUID], update_of(row, self.agent_id or ""))))

    def _forward(self, rows: list[UpdateRow]) -> None:
        """Send `rows`, heads of their streams, to the master."""
        if rows:
            self.counters["status_updates_forwarded"] += len(rows)
            self.send_rows(self.master, _FORWARD, rows)

    def _forward_heads(self, heads: list[tuple[tuple[str, str], bytes, UpdateRow]]) -> None:
        """(Re)send the heads (key, uuid, row) of streams (retries, reconnection), each
        with its task's latest state."""
        tasks = self.tasks
        self._forward([_with_task_state(row, tasks.get(key)) for key, _uuid, row in heads])

    @on(T.STATUS_UPDATE_ACK)
    def _status_update_ack(self, sender: str, msg: wire.StatusUpdateAck, now: float) -> None:
        """The master acknowledged updates: their streams move on (the ack journalled
        first when the framework checkpoints, before the stream's next update is
        forwarded); a stream left with nothing pending ends with its task when the
        update just acked was the task's terminal one."""
        if sender != self.master:
            self.counters["messages_from_unknown"] += 1
            return
        heads, journal, ended, stale = _core.agent_acks(
            msg.rows, self.updates, self.tasks.by_framework, TERMINAL_STATES, now)
        for task, tid, uuid in journal:
            self.emit(JournalAppend(task.framework_id, task.executor_id, task.container_id, tid,
                                    JournalRecord(JournalKind.ACK, uuid)))
        for key, task in ended:
            self._end_stream(key, task)
        counters = self.counters
        counters["acks_received"] += len(msg.rows) - stale
        if stale:
            counters["stale_acks"] += stale
        if self.connection is _REGISTERED:
            self._forward(heads)

    def _end_stream(self, key: tuple[str, str], task: Task | None) -> None:
        """The stream of `key` has nothing pending and nothing more to carry: it has no
        task record, or the update just acked was its task's terminal one (task.state
        is the latest), and the task ends here."""
        self.updates.remove(key)
        if task is not None:
            del self.tasks[key]
            executor = self.executors.get((key[0], task.executor_id))
            if executor is not None:
                executor.task_ids.discard(key[1])
            run = self._ended_runs.get(task.container_id)
            if run is not None:
                run[2].discard(key[1])
                if not run[2]:
                    del self._ended_runs[task.container_id]
                    self.emit(DiscardRun(run[0], run[1], task.container_id))

    def _run_ended(self, fid: str, eid: str, container_id: str, task_ids: set[str]) -> None:
        """A checkpointed run's executor is gone: its checkpoint goes once the updates of
        its tasks still held here are acknowledged (at once, when there are none)."""
        remaining = {tid for tid in task_ids if (fid, tid) in self.tasks}
        if remaining:
            self._ended_runs[container_id] = (fid, eid, remaining)
        else:
            self.emit(DiscardRun(fid, eid, container_id))

    # ---------------------------------------------------- framework messages
    @on(T.FRAMEWORK_TO_EXECUTOR)
    def _framework_to_executor(self, sender: str, msg: pb.FrameworkToExecutor, now: float) -> None:
        if not self._from_master(sender):
            return
        executor = self.executors.get((msg.framework_id.value, msg.executor_id.value))
        if executor is not None and executor.phase is ExecutorPhase.REGISTERED:
            self.send(executor.transport, pb.AgentToExecutorMessage(
                framework_id=msg.framework_id, executor_id=msg.executor_id, data=msg.data))

    @on(T.EXECUTOR_TO_AGENT_MESSAGE)
    def _executor_to_agent(self, sender: str, msg: pb.ExecutorToAgentMessage, now: float) -> None:
        executor = self.executors.get((msg.framework_id.value, msg.executor_id.value))
        if executor is None or executor.transport != sender or self.connection is not Connection.REGISTERED:
            return
        self.send(self.master, pb.ExecutorToFramework(
            framework_id=msg.framework_id, agent_id=pb.AgentID(value=self.agent_id or ""),
            executor_id=msg.executor_id, data=msg.data))

    # ------------------------------------------------------------------ views
    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.agent_id,
            "hostname": self.info.hostname,
            "transport": self.transport,
            "master": self.master,
            "connection": self.connection.value,
            "recovering": self.recovering,
            "frameworks": [
                {"id": fid, "name": info.name, "checkpoint": info.checkpoint}
                for fid, info in self.frameworks.items()
            ],
            "executors": [
                {
                    "id": e.id,
                    "framework_id": e.framework_id,
                    "container_id": e.container_id,
                    "phase": e.phase.value,
                    "tasks": sorted(e.task_ids),
                }
                for e in self.executors.values()
            ],
            "tasks": [
                {
                    "id": tid,
                    "framework_id": fid,
                    "executor_id": t.executor_id,
                    "state": pb.TaskState.Name(t.state),
                }
                for (fid, tid), t in self.tasks.items()
            ],
            "pending_status_updates": len(self.updates),
            "counters": dict(self.counters),
        }


def _with_task_state(row: UpdateRow, task: Task | None) -> UpdateRow:
    """A stream's head as forwarded: with its task's latest state (its own when the task
    is gone)."""
    return row if task is None else with_latest(row, task.state)


def _copy(info: pb.AgentInfo) -> pb.AgentInfo:
    out = pb.AgentInfo()
    out.CopyFrom(info)
    return out


def _version() -> str:
    from corral import __version__

    return __version__
