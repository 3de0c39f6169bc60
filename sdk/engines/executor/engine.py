"""The executor-driver engine: registration with the agent, task callbacks, and
reliable status updates (retried to the agent until acknowledged), sans I/O.

Agent restarts: when the connection to the agent drops, the executor of a framework
that does not checkpoint shuts down (its agent will not know it); one that checkpoints
waits up to `recovery_timeout` for the restarted agent's `AgentReconnect` (which names
the agent's new address), then answers `ReregisterExecutor` with its tasks and its
unacknowledged updates, retried every second until `ExecutorReregistered`, after which
it resends the head of every stream at once. No agent within the timeout: it shuts down.
"""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from google.protobuf.message import EncodeError

from corral.net import wire
from corral._core.decoding import status_state
from corral.engines.backoff import Backoff
from corral.engines.base import Callback, Engine, Send, earliest, on, on_timer
from corral.engines.executor._status import UpdateSource, executor_acks
from corral.engines.status import UpdateRow, ack_tracker, update_of
from corral.net.protocol import MessageType as T
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb


class ExecutorEvent(enum.Enum):
    """Callbacks of `corral.Executor`; the value is the method name."""

    REGISTERED = "registered"
    REREGISTERED = "reregistered"
    DISCONNECTED = "disconnected"
    LAUNCH_TASK = "launch_task"
    KILL_TASK = "kill_task"
    FRAMEWORK_MESSAGE = "framework_message"
    SHUTDOWN = "shutdown"
    ERROR = "error"


@dataclass(slots=True)
class Stop:
    """The driver must stop: the agent asked the executor to shut down (after flushing
    the updates not yet acknowledged), or the agent is gone for good (`flush` False:
    once the SHUTDOWN callback that follows has run)."""

    flush: bool = True


class AgentConnection(enum.Enum):
    """The executor driver's connection to its agent."""

    REGISTERING = "registering"  # RegisterExecutor sent, retried every second until ExecutorRegistered
    REGISTERED = "registered"
    #: the connection dropped and no restarted agent has taken us back yet (a restarted
    #: agent's AgentReconnect starts ReregisterExecutor, retried until ExecutorReregistered)
    DISCONNECTED = "disconnected"


class ExecutorTimer(enum.Enum):
    """The executor engine's timers (`Engine.set_timer`)."""

    REGISTER = "register"  # the next RegisterExecutor (armed until the first registration)
    REREGISTER = "reregister"  # the next ReregisterExecutor (after an AgentReconnect)
    RECOVERY = "recovery"  # a checkpointing executor's wait for a restarted agent


class AllAcknowledged:
    """Every status update sent so far has been acknowledged by the agent."""



_STAGING = pb.TASK_STAGING


class InvalidStatusUpdate(ValueError):
    """A status an executor may not send (raised to the caller, nothing is sent)."""


def serialise_status(status: pb.TaskStatus) -> bytes:
    """`status`'s bytes, as `ExecutorEngine.send_status_update` takes them: made where
    the user calls (a driver serialises in the caller's thread, so a status changed
    after the call is sent as it was). InvalidStatusUpdate without a task id or state,
    or for TASK_STAGING (the master's state, never an executor's, as in Mesos)."""
    try:
        data = status.SerializeToString()
    except EncodeError:  # (task_id and state are required fields)
        missing = " and ".join(name for name, field in (("a task id", "task_id"), ("a state", "state"))
                               if not status.HasField(field))
        raise InvalidStatusUpdate(f"a status update needs {missing or 'its required fields'}: {status!r}") from None
    # (the checks read the bytes: a protobuf attribute read would cost more than the
    # serialisation, as it builds a wrapper object for the task id)
    state = status_state(data)
    if state == _STAGING:
        raise InvalidStatusUpdate(f"an executor may not send TASK_STAGING (task {status.task_id.value!r})")
    if state < 0:
        raise InvalidStatusUpdate(f"a status update needs a task id, not an empty one: {status!r}")
    return data


#: the kind of batch the executor's updates travel in (see `Engine.send_row`)
_UPDATES = (wire.ExecutorStatusUpdate,)
#: the keys (and, for the uuid, the length) that go before a TaskStatus's timestamp and
#: uuid on the wire: appended to a serialised status with a value after them, they set
#: the field (a parser keeps the last value of a field seen twice)
_TIMESTAMP_KEY = pb.TaskStatus(timestamp=0.0).SerializePartialToString()[:-8]
_UUID_KEY = pb.TaskStatus(uuid=bytes(16)).SerializePartialToString()[:-16]


#: (re)registration with the agent, on its host, is retried every second
REGISTRATION_RETRY = Backoff(1.0, 1.0, factor=1.0)


class ExecutorEngine(Engine):
    ACTIONS = frozenset({Send, Callback, Stop, AllAcknowledged})

    def __init__(self, framework_id: str, executor_id: str, agent: str, transport: str,
                 status_update_backoff: float = 10.0, rng: random.Random | None = None, *,
                 checkpoint: bool = False, recovery_timeout: float = 900.0, container_id: str = "") -> None:
        super().__init__()
        #: the run the agent started us in (CORRAL_CONTAINER_ID): our updates name it
        self.container_id = container_id
        self.checkpoint = checkpoint
        self.recovery_timeout = recovery_timeout
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.agent = agent
        self.transport = transport
        self.rng = rng or random.Random()
        self.connection = AgentConnection.REGISTERING
        self.agent_id = ""
        self.updates = ack_tracker(Backoff(status_update_backoff, 600.0), remember=0)  # (our uuids are unique)
        #: stamps our updates and queues them on `updates`; uuids: 8 random bytes for
        #: this driver, then a counter
        self._source = UpdateSource(framework_id, executor_id, self.rng.randbytes(8),
                                          self._stamp_for(""), _UUID_KEY, self.updates)
        self.tasks: dict[str, pb.TaskInfo] = {}
        #: the (re)registration loop's progress
        self._registration = REGISTRATION_RETRY.retry()

    def start(self, now: float) -> None:
        self._register()
        self._registration = REGISTRATION_RETRY.retry()
        self.set_timer(ExecutorTimer.REGISTER, self._registration.next_deadline(now))

    def _register(self) -> None:
        self.send(self.agent, pb.RegisterExecutor(
            framework_id=pb.FrameworkID(value=self.framework_id),
            executor_id=pb.ExecutorID(value=self.executor_id),
            transport=self.transport))

    def next_deadline(self) -> float | None:
        return earliest(super().next_deadline(), self.updates.next_deadline())

    def tick(self, now: float) -> None:
        super().tick(now)
        for _key, _uuid, row in self.updates.due(now):
            self._send_update(row)

    @on_timer(ExecutorTimer.REGISTER)
    def _registration_attempt(self, _subject: None, now: float) -> None:
        self._register()
        self.set_timer(ExecutorTimer.REGISTER, self._registration.next_deadline(now))

    @on_timer(ExecutorTimer.REREGISTER)
    def _reregistration_attempt(self, _subject: None, now: float) -> None:
        self._reregister()
        self.set_timer(ExecutorTimer.REREGISTER, self._registration.next_deadline(now))

    @on_timer(ExecutorTimer.RECOVERY)
    def _recovery_timeout(self, _subject: None, now: float) -> None:
        self._give_up()

    def _from_agent(self, sender: str) -> bool:
        return sender == self.agent

    # -- agent restarts ------------------------------------------------------------
    def peer_event(self, address: str, event: PeerEvent, now: float) -> None:
        if address != self.agent or event is not PeerEvent.DISCONNECTED:
            return
        if self.connection is AgentConnection.DISCONNECTED:
            return  # (told already)
        self.connection = AgentConnection.DISCONNECTED
        self.emit(Callback(ExecutorEvent.DISCONNECTED))
        if self.checkpoint:
            self.set_timer(ExecutorTimer.RECOVERY, now + self.recovery_timeout)
        else:
            self._give_up()

    def _give_up(self) -> None:
        """No agent to report to: kill the tasks and stop."""
        self.cancel_timer(ExecutorTimer.REREGISTER)
        self.emit(Stop(flush=False))  # first: the driver stops once the shutdown callback has run
        self.emit(Callback(ExecutorEvent.SHUTDOWN))

    @on(T.AGENT_RECONNECT)
    def _agent_reconnect(self, sender: str, msg: pb.AgentReconnect, now: float) -> None:
        if msg.transport != sender or not self.checkpoint:
            return
        self.agent = sender
        self.cancel_timer(ExecutorTimer.RECOVERY)
        self._reregister()
        self._registration = REGISTRATION_RETRY.retry()
        self.set_timer(ExecutorTimer.REREGISTER, self._registration.next_deadline(now))

    def _reregister(self) -> None:
        msg = pb.ReregisterExecutor(framework_id=pb.FrameworkID(value=self.framework_id),
                                    executor_id=pb.ExecutorID(value=self.executor_id), transport=self.transport)
        msg.tasks.extend(self.tasks.values())
        for tid in self.tasks:
            msg.updates.extend(update_of(row, self.agent_id) for _uuid, row in self.updates.pending(tid))
        self.send(self.agent, msg)

    @on(T.EXECUTOR_REREGISTERED)
    def _reregistered(self, sender: str, msg: pb.ExecutorReregistered, now: float) -> None:
        if not self._from_agent(sender) or not self.has_timer(ExecutorTimer.REREGISTER):
            return
        self.cancel_timer(ExecutorTimer.REREGISTER)
        self.cancel_timer(ExecutorTimer.REGISTER)
        self.connection = AgentConnection.REGISTERED
        self._set_agent_id(msg.agent_id.value)
        self.emit(Callback(ExecutorEvent.REREGISTERED, msg.agent_info))
        for _key, _uuid, row in self.updates.resume(now):
            self._send_update(row)

    @on(T.EXECUTOR_REGISTERED)
    def _registered(self, sender: str, msg: pb.ExecutorRegistered, now: float) -> None:
        if not self._from_agent(sender) or not self.has_timer(ExecutorTimer.REGISTER):
            return  # (registered already: the register loop runs until the first registration)
        if self.connection is AgentConnection.REGISTERING:
            self.connection = AgentConnection.REGISTERED
        self._set_agent_id(msg.agent_id.value)
        self.cancel_timer(ExecutorTimer.REGISTER)
        self.emit(Callback(ExecutorEvent.REGISTERED, msg.executor_info, msg.framework_info, msg.agent_info))

    @on(T.RUN_EXECUTOR_TASK)
    def _run_task(self, sender: str, msg: pb.RunExecutorTask, now: float) -> None:
        if not self._from_agent(sender) or msg.task.task_id.value in self.tasks:
            return
        self.tasks[msg.task.task_id.value] = msg.task
        self.emit(Callback(ExecutorEvent.LAUNCH_TASK, msg.task))

    @on(T.KILL_EXECUTOR_TASK)
    def _kill_task(self, sender: str, msg: pb.KillExecutorTask, now: float) -> None:
        if self._from_agent(sender):
            self.emit(Callback(ExecutorEvent.KILL_TASK, msg.task_id))

    @on(T.AGENT_TO_EXECUTOR_MESSAGE)
    def _message(self, sender: str, msg: pb.AgentToExecutorMessage, now: float) -> None:
        if self._from_agent(sender):
            self.emit(Callback(ExecutorEvent.FRAMEWORK_MESSAGE, msg.data))

    @on(T.SHUTDOWN_EXECUTOR)
    def _shutdown(self, sender: str, msg: pb.ShutdownExecutor, now: float) -> None:
        if self._from_agent(sender):
            self.emit(Callback(ExecutorEvent.SHUTDOWN))
            self.emit(Stop())

    @on(T.EXECUTOR_STATUS_UPDATE_ACK)
    def _ack(self, sender: str, msg: wire.ExecutorStatusUpdateAck, now: float) -> None:
        if not self._from_agent(sender):
            return
        heads, emptied = executor_acks(msg.rows, self.updates, now)
        if heads:
            self.send_rows(self.agent, _UPDATES, heads)
        if emptied and not len(self.updates):
            self.emit(AllAcknowledged())

    def _send_update(self, row: UpdateRow) -> None:
        self.send_row(self.agent, _UPDATES, row)

    # -- calls from the user's Executor ---------------------------------------
    def send_status_update(self, data: bytes, now: float) -> None:
        """Send a status (`data`, from `serialise_status`) reliably: stamped with a new
        uuid, the time, our source, executor and agent ids (appended to its bytes, which
        protobuf merges)."""
        row = self._source.add(data, now)
        if row is not None:
            self.send_row(self.agent, _UPDATES, row)

    def _set_agent_id(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self._source.stamp = self._stamp_for(agent_id)

    def _stamp_for(self, agent_id: str) -> bytes:
        """What to append to a user's serialised status, up to the timestamp's value:
        our source, executor, container and agent ids, and the timestamp's key."""
        stamp = pb.TaskStatus(source=pb.TaskStatus.SOURCE_EXECUTOR)
        stamp.executor_id.value = self.executor_id
        if self.container_id:
            stamp.container_id = self.container_id
        if agent_id:
            stamp.agent_id.value = agent_id
        return stamp.SerializePartialToString() + _TIMESTAMP_KEY

    def send_framework_message(self, data: bytes) -> None:
        self.send(self.agent, pb.ExecutorToAgentMessage(
            framework_id=pb.FrameworkID(value=self.framework_id),
            executor_id=pb.ExecutorID(value=self.executor_id), data=data))

    def unacknowledged(self) -> int:
        return len(self.updates)
