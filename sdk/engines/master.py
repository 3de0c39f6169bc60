"""The master engine: agent and framework registries, offers, the task table, the
status-update relay, reconciliation answers and agent liveness, as a sans-I/O state
machine.

Invariants:
- a resource of an agent is in exactly one place: available, offered (one offer), or
  used by a task whose latest state is not terminal;
- a task is forgotten only once its terminal update has been acknowledged, or when no
  agent has it any more (its agent was removed, or reregistered without it);
- messages from a framework are honoured only from its current transport (a failed-over
  scheduler replaces the old one, which is told so).
"""
from __future__ import annotations

import enum
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from corral import _core, wire
from corral.engines.base import Engine, on
from corral.engines.common import (TERMINAL_STATES, PARTITION_AWARE_STATES, for_framework, is_terminal, new_status,
                                   partition_aware)
from corral.engines.master_operator import OperatorEvent, OperatorEvents, state_view
from corral.engines.status import (
    HEALTH_UNREPORTED, HEALTHY, HEALTHY_OF, UNHEALTHY, Batch, status_row,
)
from corral.protocol import MessageType as T
from corral.protocol import PeerEvent
from corral.protos import corral_pb2 as pb
from corral.master import operations
from corral.master.allocator import Allocator, AllocatorConfig, AllocatorError, RoleError
from corral.resources import ResourceError, Resources

log = logging.getLogger(__name__)

Reason = pb.TaskStatus.Reason
SOURCE_MASTER = pb.TaskStatus.SOURCE_MASTER
#: the kind of batch updates to a framework travel in (see `Engine.send_row`)
_UPDATES = (wire.Updates,)
#: one status-update message in this many leaves a relay sample (`relay_samples`)
RELAY_SAMPLE_EVERY = 64


@dataclass
class MasterConfig:
    allocation_interval: float = 1.0
    ping_interval: float = 15.0
    max_missed_pongs: int = 5
    min_allocatable_cpus: float = 0.01
    min_allocatable_mem: float = 32.0
    #: seconds an offer may stay outstanding before it is rescinded (None: forever)
    offer_timeout: float | None = None
    #: completed tasks kept per framework for the state endpoint and UI
    max_completed_tasks: int = 1000
    #: removed frameworks kept (with their tasks) for the state endpoint and UI
    max_completed_frameworks: int = 50
    #: after a master restart: how long admitted agents have to come back before they
    #: are marked unreachable, and the share of them whose return releases offers earlier
    agent_reregister_timeout: float = 600.0
    recovered_agents_ratio: float = 0.8


class AgentRecordState(enum.Enum):
    """An agent's entry in the registry."""

    ADMITTED = "admitted"
    UNREACHABLE = "unreachable"
    GONE = "gone"


@dataclass
class RegistryState:
    """What the registry knew when the master started: admitted agents (info), those
    unreachable (since when), and those an operator marked gone."""

    admitted: dict[str, pb.AgentInfo] = field(default_factory=dict)
    unreachable: dict[str, float] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)


@dataclass(slots=True)
class RecordAgent:
    """Write the agent's registry entry (before anything that depends on it is sent);
    `info` None keeps the stored info."""

    agent_id: str
    info: pb.AgentInfo | None
    record: AgentRecordState
    since: float


@dataclass(slots=True)
class ForgetAgent:
    """Remove the agent from the registry."""

    agent_id: str


REGISTRY_ACTIONS = (RecordAgent, ForgetAgent)


def apply_to_registry(state: RegistryState, action: RecordAgent | ForgetAgent) -> None:
    """Perform a registry action on an in-memory registry (the simulator keeps one)."""
    agent_id = action.agent_id
    state.unreachable.pop(agent_id, None)
    if isinstance(action, ForgetAgent):
        state.admitted.pop(agent_id, None)
        state.gone.discard(agent_id)
    elif action.record is AgentRecordState.ADMITTED:
        assert action.info is not None
        state.admitted[agent_id] = action.info
    elif action.record is AgentRecordState.UNREACHABLE:
        state.admitted.pop(agent_id, None)
        state.unreachable[agent_id] = action.since
    else:
        state.admitted.pop(agent_id, None)
        state.gone.add(agent_id)


class AgentState(enum.Enum):
    REGISTERED = "registered"
    #: its connection dropped: no offers until it reregisters; pings decide unreachability
    DISCONNECTED = "disconnected"
    UNREACHABLE = "unreachable"


_AGENT_REGISTERED = AgentState.REGISTERED  # (an Enum member read from its class costs a Python call)


#: what the master keeps of a task (a C type in the compiled build: the status path's
#: loops read and write its fields as struct fields)
Task = _core.MasterTask


@dataclass(slots=True)
class Agent:
    id: str
    info: pb.AgentInfo
    transport: str
    total: Resources
    state: AgentState = AgentState.REGISTERED
    used: Resources = field(default_factory=Resources)
    offered: Resources = field(default_factory=Resources)
    missed_pongs: int = 0
    registered_at: float = 0.0
    #: the agent process's registration session (RegisterAgent.session)
    session: bytes = b""
    #: kills that could not be sent while the agent was away; sent when it is back
    pending_kills: set[tuple[str, str]] = field(default_factory=set)
    tasks: dict[tuple[str, str], Task] = field(default_factory=dict)
    #: the batch kind of the acks relayed to it (see `Engine.send_row`)
    ack_kind: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.ack_kind = (wire.StatusUpdateAck, self.id)

    def available(self) -> Resources:
        return self.total - self.used - self.offered


@dataclass
class Offer:
    id: str
    framework_id: str
    agent_id: str
    resources: Resources
    created: float
    role: str


@dataclass(slots=True)
class Framework:
    id: str
    info: pb.FrameworkInfo
    transport: str
    connected: bool = True
    registered_at: float = 0.0
    #: the subscription attempt we last answered (Subscribe.session)
    session: bytes = b""
    tasks: dict[str, Task] = field(default_factory=dict)
    completed: list[Task] = field(default_factory=list)
    offers: set[str] = field(default_factory=set)
    #: for operators: updates relayed to it, acknowledgements it sent, reconcile calls
    #: it made (and when it last did), when it was removed (0: it was not)
    status_updates: int = 0
    acknowledgements: int = 0
    reconcile_calls: int = 0
    last_reconcile: float = 0.0
    removed_at: float = 0.0

    def answered(self, transport: str, session: bytes) -> bool:
        """Whether a Subscribe from `transport` with `session` retries the attempt we
        answered, on a connection still up: that scheduler sees every offer made after
        the Subscribed it takes (and declines those that overtake it), so the offers it
        holds stay valid."""
        return self.connected and self.transport == transport and self.session == session

    @property
    def roles(self) -> list[str]:
        if self.info.roles:
            return list(self.info.roles)
        return [self.info.role or "*"]


class MasterEngine(Engine):
    def __init__(self, master_info: pb.MasterInfo, config: MasterConfig | None = None, now: float = 0.0,
                 registry: RegistryState | None = None) -> None:
        super().__init__()
        self.info = master_info
        self.config = config or MasterConfig()
        self.id = master_info.id
        self.agents: dict[str, Agent] = {}
        self.agents_by_transport: dict[str, str] = {}
        self.frameworks: dict[str, Framework] = {}
        self.offers: dict[str, Offer] = {}
        self.allocator = Allocator(AllocatorConfig(min_allocatable=(
            {"cpus": self.config.min_allocatable_cpus}, {"mem": self.config.min_allocatable_mem})))
        self._ids = itertools.count(1)
        self.counters: dict[str, int] = {
            "status_updates": 0,
            "acknowledged_retries": 0,
            "invalid_status_updates": 0,
            "acknowledgements": 0,
            "invalid_acknowledgements": 0,
            "tasks_launched": 0,
            "invalid_tasks": 0,
            "offers_sent": 0,
            "offers_declined": 0,
            "offers_rescinded": 0,
            "messages_from_unknown": 0,
            "reconcile_calls": 0,
            "allocation_conflicts": 0,
            "invalid_operations": 0,
        }
        #: removed frameworks, the latest last (operators see them as completed)
        self.completed_frameworks: deque[Framework] = deque(maxlen=self.config.max_completed_frameworks)
        #: how many tasks reached each terminal state (state -> count)
        self.task_ends: dict[int, int] = {}
        #: while operators listen: the events for them (see `corral.engines.master_operator`)
        self.operator_events: OperatorEvents | None = None
        #: (time relayed, serialised TaskStatus) of the first update of one status-update
        #: message in RELAY_SAMPLE_EVERY, the latest 1024 (the relay latency metric's)
        self.relay_samples: deque[tuple[float, bytes]] = deque(maxlen=1024)
        self._until_sample = 1
        registry = registry or RegistryState()
        #: admitted agents that have not reregistered since this master started
        self.recovering: dict[str, pb.AgentInfo] = dict(registry.admitted)
        self._recovering_total = len(self.recovering)
        self._recovery_deadline = now + self.config.agent_reregister_timeout
        self.unreachable_since: dict[str, float] = dict(registry.unreachable)
        self.gone: set[str] = set(registry.gone)
        if self.recovering:
            self.set_timer(("reregister_timeout",), self._recovery_deadline)
        self.set_timer(("allocate",), now + self.config.allocation_interval)
        self.set_timer(("ping",), now + self.config.ping_interval)

    # ------------------------------------------------------------------ ids
    def _new_id(self, kind: str) -> str:
        return f"{self.id}-{kind}{next(self._ids):04d}"

    def _allocate_soon(self, now: float) -> None:
        self.set_timer(("allocate",), now)

    def _tell(self, event: OperatorEvent, subject: Any) -> None:
        """An event for operators, if any listen."""
        if self.operator_events is not None:
            self.operator_events.log.append((event, subject))

    # ------------------------------------------------------------ frameworks
    def _framework_from(self, sender: str, framework_id: str) -> Framework | None:
        """The framework, if `sender` is its current connection. A call from elsewhere
        gets a fatal error when another connection serves the framework (that scheduler
        replaced this one), and is ignored when none does yet: calls a scheduler queued
        before a master failover can reach the new master ahead of its Subscribe (Mesos
        ignores calls of frameworks that have not subscribed, too)."""
        fw = self.frameworks.get(framework_id)
        if fw is not None and fw.transport == sender:
            return fw
        self.counters["messages_from_unknown"] += 1
        if fw is None:
            self.send(sender, pb.Error(message=f"unknown framework {framework_id!r}"))
        elif fw.connected:
            self.send(sender, pb.Error(message=f"framework {framework_id!r} is served from another connection", fatal=True))
        return None

    @on(T.SUBSCRIBE)
    def _subscribe(self, sender: str, msg: pb.Subscribe, now: float) -> None:
        transport = msg.transport or sender
        if transport != sender:
            # every call and answer goes by the connection it came from: a framework
            # served at another address could never be answered, nor call us
            self.counters["messages_from_unknown"] += 1
            self.send(sender, pb.Error(message=f"Subscribe names transport {transport!r} but comes from {sender!r}",
                                       fatal=True))
            return
        info = pb.FrameworkInfo()
        info.CopyFrom(msg.framework_info)
        retry = False
        if info.HasField("id") and info.id.value:
            fid = info.id.value
            fw = self.frameworks.get(fid)
            if fw is None:
                # A framework we do not know (e.g. after a master failover): adopt it.
                fw = self._add_framework(fid, info, transport, sender, now)
                if fw is None:
                    return
            else:
                retry = fw.answered(transport, msg.session)
                if fw.transport and fw.transport != transport:
                    self.send(fw.transport, pb.Error(message="framework failed over: another scheduler subscribed with this id", fatal=True))
                    log.info("framework %s failed over from %s to %s", fid, fw.transport, transport)
                fw.info = info
                fw.transport = transport
            reregistered = True
        else:
            # a retried subscribe from the same, still unanswered, connection gets the same
            # id (also when the connection dropped meanwhile and the framework was set aside)
            existing = next((f for f in self.frameworks.values() if f.transport == transport), None)
            if existing is not None:
                fw = existing
                retry = fw.answered(transport, msg.session)
            else:
                fid = self._new_id("")
                info.id.value = fid
                fw = self._add_framework(fid, info, transport, sender, now)
                if fw is None:
                    return
            reregistered = False
        if not fw.connected:
            self.allocator.activate_framework(fw.id)
            fw.connected = True
        log.info("framework %s (%s) %s at %s", fw.id, info.name or "unnamed",
                 "resubscribed" if reregistered else "subscribed", transport)
        self.cancel_timer(("failover", fw.id))
        fw.info.id.value = fw.id
        fw.session = msg.session
        if not retry:
            # a new attempt ignores the offers made before the Subscribed it waits for
            self._rescind_offers_of(fw, now)
        self.send(
            transport,
            pb.Subscribed(
                framework_id=pb.FrameworkID(value=fw.id),
                master_info=self.info,
                reregistered=reregistered,
                session=msg.session,
            ),
        )
        self._allocate_soon(now)

    def _add_framework(self, fid: str, info: pb.FrameworkInfo, transport: str, sender: str, now: float,
                       *, connected: bool = True) -> Framework | None:
        """Register a framework with the registry and the allocator; None (and the
        sender told) when its roles are not valid."""
        fw = Framework(fid, info, transport, connected=connected, registered_at=now)
        try:
            self.allocator.add_framework(fid, fw.roles, active=connected)
        except RoleError as exc:
            self.send(sender, pb.Error(message=f"framework rejected: {exc}", fatal=True))
            return None
        self.frameworks[fid] = fw
        self._tell(OperatorEvent.FRAMEWORK_ADDED, fw)
        return fw

    def _recover_framework(self, fid: str, info: pb.FrameworkInfo | None, now: float) -> Framework | None:
        """A framework known only from a reregistering agent's report (e.g. after a
        master failover): kept disconnected until its scheduler subscribes again, and
        removed after its failover timeout if it does not."""
        if info is None:
            info = pb.FrameworkInfo(user="", name="", id=pb.FrameworkID(value=fid))
        fw = self._add_framework(fid, info, "", "", now, connected=False)
        if fw is not None:
            self.set_timer(("failover", fid), now + info.failover_timeout)
        return fw

    @on(T.TEARDOWN)
    def _teardown(self, sender: str, msg: pb.Teardown, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None:
            self._remove_framework(fw, now)

    @on(T.DEACTIVATE)
    def _deactivate(self, sender: str, msg: pb.Deactivate, now: float) -> None:
        """The scheduler stopped with failover: keep its tasks for failover_timeout."""
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None:
            self._disconnect_framework(fw, now)

    def _disconnect_framework(self, fw: Framework, now: float) -> None:
        log.info("framework %s disconnected; removed in %gs unless it resubscribes", fw.id, fw.info.failover_timeout)
        fw.connected = False
        self._rescind_offers_of(fw, now)
        self.allocator.deactivate_framework(fw.id)
        self.set_timer(("failover", fw.id), now + fw.info.failover_timeout)

    def _remove_framework(self, fw: Framework, now: float) -> None:
        """The framework is gone: its agents shut its executors down; it and its tasks
        are kept as completed, those still running as TASK_KILLED (as Mesos does)."""
        log.info("framework %s removed (%d task(s) known)", fw.id, len(fw.tasks))
        self._rescind_offers_of(fw, now)
        self.cancel_timer(("failover", fw.id))
        for task in list(fw.tasks.values()):
            agent = self.agents.get(task.agent_id)
            if agent is not None:
                agent.tasks.pop((fw.id, task.id), None)
                if not is_terminal(task.state):
                    agent.used = agent.used - task.resources
            if not is_terminal(task.state):
                self.task_ends[pb.TASK_KILLED] = self.task_ends.get(pb.TASK_KILLED, 0) + 1
                task.state = task.status_update_state = pb.TASK_KILLED
                self._record_status(task, pb.TASK_KILLED, Reason.REASON_FRAMEWORK_REMOVED,
                                    f"framework {fw.id} was removed", now)
        fw.completed.extend(fw.tasks.values())
        del fw.completed[: -self.config.max_completed_tasks]
        fw.tasks.clear()
        for agent in self.agents.values():
            if agent.state is AgentState.REGISTERED:
                self.send(agent.transport, pb.ShutdownFramework(framework_id=pb.FrameworkID(value=fw.id)))
        del self.frameworks[fw.id]
        self.allocator.remove_framework(fw.id)
        fw.connected = False
        fw.removed_at = now
        self.completed_frameworks.append(fw)
        self._tell(OperatorEvent.FRAMEWORK_REMOVED, fw)
        self._allocate_soon(now)

    def peer_event(self, address: str, event: PeerEvent, now: float) -> None:
        """A framework whose connection dropped is disconnected (offers rescinded, its
        failover timeout starts); an agent whose connection dropped gets no offers until
        it reregisters (pings decide whether it is unreachable)."""
        if event is not PeerEvent.DISCONNECTED:
            return
        for fw in self.frameworks.values():
            if fw.transport == address and fw.connected:
                self._disconnect_framework(fw, now)
        agent = self.agents.get(self.agents_by_transport.get(address, ""))
        if agent is not None and agent.state is AgentState.REGISTERED:
            agent.state = AgentState.DISCONNECTED
            self.allocator.deactivate_agent(agent.id)
            self._rescind_offers_on(agent, now)

    def on_timer(self, key: Any, now: float) -> None:
        kind = key[0]
        if kind == "allocate":
            self._allocate(now)
            self.set_timer(("allocate",), now + self.config.allocation_interval)
        elif kind == "ping":
            self._ping_agents(now)
            self.set_timer(("ping",), now + self.config.ping_interval)
        elif kind == "failover":
            fw = self.frameworks.get(key[1])
            if fw is not None and not fw.connected:
                self._remove_framework(fw, now)
        elif kind == "reregister_timeout":
            for agent_id in list(self.recovering):
                self.unreachable_since[agent_id] = now
                self.emit(RecordAgent(agent_id, None, AgentRecordState.UNREACHABLE, now))
            self.recovering.clear()
        elif kind == "offer_timeout":
            offer = self.offers.get(key[1])
            if offer is not None:
                self._rescind(offer, now)
        else:
            super().on_timer(key, now)

    # ---------------------------------------------------------------- agents
    @on(T.REGISTER_AGENT)
    def _register_agent(self, sender: str, msg: pb.RegisterAgent, now: float) -> None:
        known = self.agents_by_transport.get(sender)
        existing = None if known is None else self.agents.get(known)
        if existing is not None and existing.session != msg.session:
            # a fresh agent (restarted without its checkpoints, or after a reboot) at the
            # address of one we know: the old one and its tasks are gone
            self._remove_agent(existing, pb.TASK_GONE, Reason.REASON_AGENT_RESTARTED,
                               f"agent {existing.id} was replaced by a new agent at {sender}", now)
            existing = None
        if existing is not None:
            # our reply was lost or is late: answer again. Launches are not resent: each
            # was sent once, after a reply, and the agent runs those that reach it before
            # its first reply once that reply arrives (a resent launch could reach it after
            # the task ended and run the task a second time)
            agent = existing
        else:
            try:
                total = Resources.from_protos(msg.agent.resources)
            except ResourceError as exc:
                self.send(sender, pb.Error(message=f"agent resources rejected: {exc}", fatal=True))
                return
            agent_id = self._new_id("S")
            info = pb.AgentInfo()
            info.CopyFrom(msg.agent)
            info.id.value = agent_id
            agent = Agent(agent_id, info, sender, total, registered_at=now, session=msg.session)
            self.agents[agent_id] = agent
            self.agents_by_transport[sender] = agent_id
            self.allocator.add_agent(agent_id, total)
            log.info("agent %s registered from %s with %s", agent_id, sender, total)
            self.emit(RecordAgent(agent_id, info, AgentRecordState.ADMITTED, now))
            self._tell(OperatorEvent.AGENT_ADDED, agent)
            self._allocate_soon(now)
        self.send(
            sender,
            pb.AgentRegistered(
                agent_id=pb.AgentID(value=agent.id),
                master_info=self.info,
                ping_interval_seconds=self.config.ping_interval,
            ),
        )

    @on(T.REREGISTER_AGENT)
    def _reregister_agent(self, sender: str, msg: pb.ReregisterAgent, now: float) -> None:
        agent_id = msg.agent.id.value
        if not agent_id:
            self.send(sender, pb.Error(message="ReregisterAgent without an agent id: register instead", fatal=True))
            return
        if agent_id in self.gone:
            self.send(sender, pb.Error(message=f"agent {agent_id} was marked gone by an operator: start it afresh",
                                       fatal=True))
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            try:
                total = Resources.from_protos(msg.agent.resources)
            except ResourceError as exc:
                self.send(sender, pb.Error(message=f"agent resources rejected: {exc}", fatal=True))
                return
            info = pb.AgentInfo()
            info.CopyFrom(msg.agent)
            agent = Agent(agent_id, info, sender, total, registered_at=now)
            self.agents[agent_id] = agent
            self.allocator.add_agent(agent_id, total)
            self._tell(OperatorEvent.AGENT_ADDED, agent)
        else:
            self.agents_by_transport.pop(agent.transport, None)
            agent.transport = sender
        returning = agent.state is AgentState.UNREACHABLE or agent_id in self.unreachable_since
        self.recovering.pop(agent_id, None)
        self.unreachable_since.pop(agent_id, None)
        self.emit(RecordAgent(agent_id, agent.info, AgentRecordState.ADMITTED, now))
        if agent.state is not AgentState.REGISTERED:
            self.allocator.activate_agent(agent_id)
        agent.state = AgentState.REGISTERED
        self.agents_by_transport[sender] = agent_id
        agent.missed_pongs = 0
        unreported = self._reconcile_agent(agent, msg, now)
        log.info("agent %s reregistered from %s with %d task(s)%s", agent_id, sender, len(msg.tasks),
                 " after being unreachable" if returning else "")
        if returning:
            # frameworks were told UNREACHABLE (or LOST): tell them what the agent says now
            for (fid, tid), task in agent.tasks.items():
                fw = self.frameworks.get(task.framework_id)
                if fw is not None and not is_terminal(task.state) and tid not in unreported.get(fid, ()):
                    self._reply_status(fw, task.id, task.status_update_state, Reason.REASON_AGENT_REREGISTERED,
                                       f"agent {agent.id} reregistered", now, agent_id=agent.id)
        self.send(
            sender,
            pb.AgentReregistered(
                agent_id=pb.AgentID(value=agent_id),
                master_info=self.info,
                ping_interval_seconds=self.config.ping_interval,
            ),
        )
        for fid, tid in sorted(agent.pending_kills):
            task = agent.tasks.get((fid, tid))
            if task is not None and not is_terminal(task.state):
                self.send(sender, pb.KillTask(framework_id=pb.FrameworkID(value=fid), task_id=pb.TaskID(value=tid)))
        agent.pending_kills.clear()
        for fid, tids in sorted(unreported.items()):
            msg_out = pb.ReconcileTasks(framework_id=pb.FrameworkID(value=fid),
                                        task_ids=[pb.TaskID(value=t) for t in tids])
            fw = self.frameworks.get(fid)
            if fw is not None:
                msg_out.framework.CopyFrom(fw.info)
            self.send(sender, msg_out)
        self._allocate_soon(now)

    def _reconcile_agent(self, agent: Agent, msg: pb.ReregisterAgent, now: float) -> dict[str, list[str]]:
        """Merge the agent's report with our view: learn the tasks we did not know; return
        the ones we have that the report lacks, by framework, for the agent to settle
        (`ReconcileTasks`): the report may predate a launch still on its way."""
        reported: set[tuple[str, str]] = set()
        infos = {info.id.value: info for info in msg.frameworks if info.HasField("id")}
        learned: dict[tuple[str, str], list[Task]] = {}  # running tasks new to us, by (framework, role)
        for report in msg.tasks:
            fid = report.framework_id.value
            tid = _core.canonical_task_id(report.task.task_id.value)
            reported.add((fid, tid))
            task = agent.tasks.get((fid, tid))
            if task is None:
                try:
                    resources = Resources.from_protos(report.task.resources)
                except ResourceError:
                    resources = Resources()
                fw = self.frameworks.get(fid) or self._recover_framework(fid, infos.get(fid), now)
                if fw is None:
                    continue  # its framework info names invalid roles
                task = Task(tid, report.task.name, fid, resources, agent_id=agent.id, state=report.state, role=fw.roles[0])
                if report.unacknowledged:
                    # the head of the agent's stream: its ack (from a framework that got it
                    # from an earlier master) is the one that ends the task
                    head = report.unacknowledged[0]
                    task.status_update_state = head.status.state
                    task.status_update_uuid = head.uuid
                    task.healthy = head.status.healthy if head.status.HasField("healthy") else None
                else:
                    task.status_update_state = report.state
                agent.tasks[(fid, tid)] = task
                fw.tasks[tid] = task
                self._tell(OperatorEvent.TASK_ADDED, task)
                if not is_terminal(task.state):
                    learned.setdefault((fid, task.role), []).append(task)
            else:
                self._set_latest_state(task, agent, report.state)
        for (fid, role), tasks in learned.items():
            self._hold_reported(agent, fid, role, tasks)
        unreported: dict[str, list[str]] = {}
        for (fid, tid) in agent.tasks:
            if (fid, tid) not in reported:
                unreported.setdefault(fid, []).append(tid)
        return unreported

    def _hold_reported(self, agent: Agent, fid: str, role: str, tasks: list[Task]) -> None:
        """Running tasks of `fid` in `role` that `agent` reported and we did not know: their
        resources are in use on the agent and held by the framework. One allocator call
        for them all (a failover learns every task this way); if they do not fit
        together, or claim one persistent volume twice, one task at a time, so that only
        the tasks that do not fit are refused (counted and logged)."""
        total = Resources()
        try:
            for task in tasks:
                total = total + task.resources
            used = agent.used + total
            self.allocator.add_allocation(fid, agent.id, total, role)
            agent.used = used
            return
        except (AllocatorError, ResourceError):
            pass
        for task in tasks:
            try:
                agent.used = agent.used + task.resources
                self.allocator.add_allocation(fid, agent.id, task.resources, role)
            except (AllocatorError, ResourceError) as exc:
                self.counters["allocation_conflicts"] += 1
                log.error("task %s of framework %s on agent %s: %s", task.id, fid, agent.id, exc)

    def _set_latest_state(self, task: Task, agent: Agent | None, state: int) -> None:
        """The newest state known of `task`: a terminal one frees its resources on
        `agent` (None: its agent is gone) and is counted."""
        if not is_terminal(task.state) and is_terminal(state):
            self.task_ends[state] = self.task_ends.get(state, 0) + 1
            if agent is not None:
                agent.used = agent.used - task.resources
                self.allocator.recover(task.framework_id, agent.id, task.resources, role=task.role)
        task.state = state

    @on(T.UNREGISTER_AGENT)
    def _unregister_agent(self, sender: str, msg: pb.UnregisterAgent, now: float) -> None:
        agent = self.agents.get(msg.agent_id.value)
        if agent is None or agent.transport != sender:
            self.counters["messages_from_unknown"] += 1
            return
        self._remove_agent(agent, pb.TASK_LOST, Reason.REASON_AGENT_REMOVED, "agent shut down", now)

    def _remove_agent(self, agent: Agent, state: int, reason: int, message: str, now: float) -> None:
        log.info("agent %s removed: %s", agent.id, message)
        self._rescind_offers_on(agent, now)
        # every task goes with its agent (no update of its stream will come again); the
        # framework is told of those whose end it was not sent (the head is not terminal)
        for task in list(agent.tasks.values()):
            if is_terminal(task.status_update_state):
                self._forget_task(task)
            else:
                self._master_update(task, state, reason, message, now, forget=True)
        del self.agents[agent.id]
        self.agents_by_transport.pop(agent.transport, None)
        self.allocator.remove_agent(agent.id)
        self.emit(ForgetAgent(agent.id))
        self._tell(OperatorEvent.AGENT_REMOVED, agent)
        for fw in self.frameworks.values():
            if fw.connected:
                self.send(fw.transport, pb.Failure(agent_id=pb.AgentID(value=agent.id)))

    # ------------------------------------------------------- operator actions
    def mark_gone(self, agent_id: str, now: float) -> str:
        """An operator says the agent will not come back: its tasks are reported
        GONE_BY_OPERATOR and it may not reregister. '' or the reason it cannot be done."""
        agent = self.agents.get(agent_id)
        if agent is not None:
            self._remove_agent(agent, pb.TASK_GONE_BY_OPERATOR, Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
                               f"agent {agent_id} was marked gone by an operator", now)
        elif agent_id not in self.recovering and agent_id not in self.unreachable_since:
            return f"unknown agent {agent_id!r}" if agent_id not in self.gone else ""
        self.recovering.pop(agent_id, None)
        self.unreachable_since.pop(agent_id, None)
        self.gone.add(agent_id)
        self.emit(RecordAgent(agent_id, None, AgentRecordState.GONE, now))
        return ""

    def operator_teardown(self, framework_id: str, now: float) -> str:
        """An operator removes a framework (as if its scheduler had torn it down): its
        agents kill its tasks. '' or the reason it cannot be done."""
        fw = self.frameworks.get(framework_id)
        if fw is None:
            return f"unknown framework {framework_id!r}"
        if fw.connected:
            self.send(fw.transport, pb.Error(message=f"framework {framework_id} was torn down by an operator",
                                             fatal=True))
        self._remove_framework(fw, now)
        return ""

    def operator_kill(self, framework_id: str, task_id: str, now: float) -> str:
        """An operator kills a task, as its framework would (the framework is told how it
        ends by the task's updates). '' or the reason it cannot be done."""
        fw = self.frameworks.get(framework_id)
        task = fw.tasks.get(task_id) if fw is not None else None
        if task is None or is_terminal(task.state):
            return f"no live task {task_id!r} of framework {framework_id!r}"
        agent = self.agents.get(task.agent_id)
        if agent is None:
            return f"the agent of task {task_id!r} is gone"
        if agent.state is not AgentState.REGISTERED:
            agent.pending_kills.add((fw.id, task_id))  # sent when the agent is back
        else:
            self.send(agent.transport, pb.KillTask(framework_id=pb.FrameworkID(value=fw.id),
                                                   task_id=pb.TaskID(value=task_id)))
        return ""

    def operator_reservation(self, agent_id: str, resources: list[pb.Resource], unreserve: bool, now: float) -> str:
        """Reserve (or unreserve) resources of an agent for the role they name, outside
        any offer: what is offered on the agent is rescinded first; the resources must be
        unallocated. '' or the reason it cannot be done."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.REGISTERED:
            return f"agent {agent_id!r} is not registered"
        if not resources or not resources[0].reservations:
            return "name resources with a reservation (a role)"
        role = resources[0].reservations[-1].role
        Op = pb.Offer.Operation
        op = (Op(type=Op.UNRESERVE, unreserve=Op.Unreserve(resources=resources)) if unreserve
              else Op(type=Op.RESERVE, reserve=Op.Reserve(resources=resources)))
        try:
            change = operations.conversion(op, role, agent.total)
        except operations.OperationError as exc:
            return str(exc)
        self._rescind_offers_on(agent, now)
        available = self.allocator.available(agent_id)
        if not available.contains(change.consumed):
            return f"agent {agent_id} has not {change.consumed} unallocated (it has {available})"
        agent.total = agent.total - change.consumed + change.converted
        self.allocator.update_agent(agent_id, agent.total)
        del agent.info.resources[:]
        agent.info.resources.extend(agent.total.to_protos())
        self.send(agent.transport, pb.CheckpointResources(agent_id=pb.AgentID(value=agent_id),
                                                          resources=agent.info.resources))
        self._allocate_soon(now)
        return ""

    def _ping_agents(self, now: float) -> None:
        for agent in list(self.agents.values()):
            if agent.state is AgentState.UNREACHABLE:
                continue
            if agent.missed_pongs >= self.config.max_missed_pongs:
                self._mark_unreachable(agent, now)
                continue
            agent.missed_pongs += 1
            # connected=False: the agent's connection dropped on our side; it must
            # register again (it may believe itself registered)
            self.send(agent.transport, pb.Ping(connected=agent.state is AgentState.REGISTERED, master_id=self.id))

    def _mark_unreachable(self, agent: Agent, now: float) -> None:
        log.info("agent %s unreachable after %d unanswered pings", agent.id, agent.missed_pongs)
        agent.state = AgentState.UNREACHABLE
        self.unreachable_since[agent.id] = now
        self.emit(RecordAgent(agent.id, None, AgentRecordState.UNREACHABLE, now))
        self.allocator.deactivate_agent(agent.id)
        self._rescind_offers_on(agent, now)
        for task in list(agent.tasks.values()):
            if not is_terminal(task.state):
                self._master_update(task, pb.TASK_UNREACHABLE, Reason.REASON_AGENT_DISCONNECTED,
                                    f"agent {agent.id} is unreachable", now, forget=False)

    @on(T.PONG)
    def _pong(self, sender: str, msg: pb.Pong, now: float) -> None:
        agent = self.agents.get(msg.agent_id.value)
        if agent is not None and agent.transport == sender:
            agent.missed_pongs = 0

    # ---------------------------------------------------------------- offers
    def _allocate(self, now: float) -> None:
        """One allocation cycle of the hierarchical DRF allocator: each allocation becomes
        one offer (one agent, one role), sent to its framework in one Offers message.
        After a master restart, nothing is offered until most agents are back (or their
        time to come back is over)."""
        if self.recovering and now < self._recovery_deadline:
            back = self._recovering_total - len(self.recovering)
            if back < self.config.recovered_agents_ratio * self._recovering_total:
                return
        batches: dict[str, list[pb.Offer]] = {}
        for allocation in self.allocator.allocate(now):
            fw = self.frameworks[allocation.framework_id]
            agent = self.agents[allocation.agent_id]
            offer = Offer(self._new_id("O"), fw.id, agent.id, allocation.resources, now, allocation.role)
            self.offers[offer.id] = offer
            fw.offers.add(offer.id)
            agent.offered = agent.offered + offer.resources
            if self.config.offer_timeout is not None:
                self.set_timer(("offer_timeout", offer.id), now + self.config.offer_timeout)
            batches.setdefault(fw.id, []).append(self._offer_proto(offer, agent, fw))
        for fid, offers in batches.items():
            log.debug("%d offer(s) to framework %s", len(offers), fid)
            self.counters["offers_sent"] += len(offers)
            self.send(self.frameworks[fid].transport, pb.Offers(offers=offers))

    def _offer_proto(self, offer: Offer, agent: Agent, fw: Framework) -> pb.Offer:
        proto = pb.Offer(
            id=pb.OfferID(value=offer.id),
            framework_id=pb.FrameworkID(value=fw.id),
            agent_id=pb.AgentID(value=agent.id),
            hostname=agent.info.hostname,
            resources=offer.resources.to_protos(),
            attributes=agent.info.attributes,
            allocation_role=offer.role,
        )
        return proto

    def _close_offer(self, offer: Offer) -> None:
        """The offer is gone; its resources stay allocated to the framework until the
        caller recovers them (declined, rescinded) or they become used (accepted)."""
        self.offers.pop(offer.id, None)
        self.cancel_timer(("offer_timeout", offer.id))
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None:
            fw.offers.discard(offer.id)
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offered = agent.offered - offer.resources

    def _rescind(self, offer: Offer, now: float) -> None:
        self._close_offer(offer)
        self.allocator.recover(offer.framework_id, offer.agent_id, offer.resources, role=offer.role)
        self.counters["offers_rescinded"] += 1
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None and fw.connected:
            self.send(fw.transport, pb.Rescind(offer_id=pb.OfferID(value=offer.id)))
        self._allocate_soon(now)

    def _rescind_offers_of(self, fw: Framework, now: float) -> None:
        for offer_id in list(fw.offers):
            self._rescind(self.offers[offer_id], now)

    def _rescind_offers_on(self, agent: Agent, now: float) -> None:
        for offer in [o for o in self.offers.values() if o.agent_id == agent.id]:
            self._rescind(offer, now)

    @on(T.DECLINE)
    def _decline(self, sender: str, msg: pb.Decline, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        for offer_id in msg.offer_ids:
            offer = self.offers.get(offer_id.value)
            if offer is None or offer.framework_id != fw.id:
                continue
            self._close_offer(offer)
            self.counters["offers_declined"] += 1
            self.allocator.recover(fw.id, offer.agent_id, offer.resources, refuse_seconds=msg.filters.refuse_seconds,
                                   now=now, role=offer.role)

    @on(T.REVIVE)
    def _revive(self, sender: str, msg: pb.Revive, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None and self._subscribed_roles(fw, msg.roles):
            self.allocator.revive(fw.id, list(msg.roles) or None)
            self._allocate_soon(now)

    @on(T.SUPPRESS)
    def _suppress(self, sender: str, msg: pb.Suppress, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None and self._subscribed_roles(fw, msg.roles):
            self.allocator.suppress(fw.id, list(msg.roles) or None)

    def _subscribed_roles(self, fw: Framework, roles: Iterable[str]) -> bool:
        """Whether `fw` is subscribed to every one of `roles` (a Revive or Suppress
        naming others is refused with an error, and changes nothing)."""
        others = sorted(set(roles) - set(fw.roles))
        if others:
            self.send(fw.transport, pb.Error(message=f"framework {fw.id} is not subscribed to role(s) {others}"))
        return not others

    # ----------------------------------------------------------------- launch
    @on(T.ACCEPT)
    def _accept(self, sender: str, msg: pb.Accept, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        launches = [t for op in msg.operations if op.type == pb.Offer.Operation.LAUNCH for t in op.launch.task_infos]
        offers, error = self._take_offers(fw, msg.offer_ids)
        if error:
            for task in launches:
                self._reply_status(fw, task.task_id.value, pb.TASK_DROPPED, Reason.REASON_INVALID_OFFERS, error, now,
                                   agent_id=task.agent_id.value)
            return
        agent = self.agents[offers[0].agent_id]
        role = offers[0].role
        remaining = Resources()
        for offer in offers:
            remaining = remaining + offer.resources
        seen: set[str] = set()
        changed = False
        for op in msg.operations:
            if op.type != pb.Offer.Operation.LAUNCH:
                try:
                    change = operations.conversion(op, role, agent.total)
                    remaining = operations.apply(remaining, change, agent.used)
                except operations.OperationError as exc:
                    self.counters["invalid_operations"] += 1
                    self.send(fw.transport, pb.Error(message=f"{pb.Offer.Operation.Type.Name(op.type)} rejected: {exc}"))
                    continue
                agent.total = agent.total - change.consumed + change.converted
                self.allocator.update_allocation(fw.id, agent.id, change.consumed, change.converted, role)
                changed = True
                continue
            for task_info in op.launch.task_infos:
                problem, resources = self._validate_task(fw, agent, task_info, remaining, seen)
                tid = task_info.task_id.value
                seen.add(tid)
                if problem:
                    self.counters["invalid_tasks"] += 1
                    self._reply_status(fw, tid, pb.TASK_ERROR, Reason.REASON_TASK_INVALID, problem, now,
                                       agent_id=agent.id)
                    continue
                remaining = remaining - resources
                self._launch(fw, agent, task_info, resources, role)
        if changed:
            del agent.info.resources[:]
            agent.info.resources.extend(agent.total.to_protos())
            self.send(agent.transport, pb.CheckpointResources(agent_id=pb.AgentID(value=agent.id),
                                                              resources=agent.info.resources))
        if remaining:
            self.allocator.recover(fw.id, agent.id, remaining, refuse_seconds=msg.filters.refuse_seconds, now=now,
                                   role=role)
        self._allocate_soon(now)

    def _take_offers(self, fw: Framework, offer_ids: Any) -> tuple[list[Offer], str]:
        """Validate and consume the offers of an accept; their resources return to the
        agent's available pool, to be used by the launches that follow."""
        ids = [o.value for o in offer_ids]
        if not ids:
            return [], "no offers named"
        if len(set(ids)) != len(ids):
            return [], f"offer ids used more than once: {ids}"
        offers = []
        for oid in ids:
            offer = self.offers.get(oid)
            if offer is None:
                return [], f"offer {oid} is no longer valid"
            if offer.framework_id != fw.id:
                return [], f"offer {oid} belongs to another framework"
            offers.append(offer)
        if len({o.agent_id for o in offers}) != 1:
            return [], "offers from more than one agent"
        if len({o.role for o in offers}) != 1:
            return [], "offers for more than one role"
        for offer in offers:
            self._close_offer(offer)
        return offers, ""

    def _validate_task(self, fw: Framework, agent: Agent, info: pb.TaskInfo, remaining: Resources,
                       seen: set[str]) -> tuple[str, Resources]:
        tid = info.task_id.value
        if not tid:
            return "task id is empty", Resources()
        if tid in seen:
            return f"task id {tid!r} is used twice in one launch", Resources()
        existing = fw.tasks.get(tid)
        if existing is not None:  # (as Mesos: a task is known until its terminal update is acknowledged)
            if not is_terminal(existing.state):
                return f"task id {tid!r} is already in use by a live task", Resources()
            return (f"task id {tid!r} is still in use: the terminal update of the task that had it "
                    f"is not acknowledged yet"), Resources()
        if info.agent_id.value != agent.id:
            return f"task {tid!r} names agent {info.agent_id.value!r} but its offers are on {agent.id!r}", Resources()
        if info.HasField("executor") == info.HasField("command"):
            return f"task {tid!r} needs exactly one of 'command' and 'executor'", Resources()
        try:
            resources = Resources.from_protos(info.resources)
            if info.HasField("executor"):
                resources = resources + Resources.from_protos(info.executor.resources)
        except ResourceError as exc:
            return f"task {tid!r}: {exc}", Resources()
        if not resources:
            return f"task {tid!r} uses no resources", Resources()
        if not remaining.contains(resources):
            return f"task {tid!r} needs {resources} but the offers have only {remaining}", Resources()
        return "", resources

    def _launch(self, fw: Framework, agent: Agent, info: pb.TaskInfo, resources: Resources, role: str) -> None:
        tid = _core.canonical_task_id(info.task_id.value)
        task = Task(tid, info.name, fw.id, resources, agent_id=agent.id, role=role)
        fw.tasks[task.id] = task
        agent.tasks[(fw.id, task.id)] = task
        agent.used = agent.used + resources
        self.counters["tasks_launched"] += 1
        self._tell(OperatorEvent.TASK_ADDED, task)
        self.send(agent.transport, pb.RunTask(framework=fw.info, task=info, framework_transport=fw.transport))

    # ------------------------------------------------------------------ kill
    @on(T.KILL)
    def _kill(self, sender: str, msg: pb.Kill, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        tid = msg.task_id.value
        task = fw.tasks.get(tid)
        if task is None:
            self._reply_status(fw, tid, pb.TASK_LOST, Reason.REASON_RECONCILIATION,
                               "attempted to kill an unknown task", now, agent_id=msg.agent_id.value or None)
            return
        agent = self.agents.get(task.agent_id)
        if agent is None:
            return  # best effort: the framework retries; reconciliation tells the truth
        if agent.state is not AgentState.REGISTERED:
            agent.pending_kills.add((fw.id, tid))  # sent when the agent is back
            return
        kill = pb.KillTask(framework_id=pb.FrameworkID(value=fw.id), task_id=msg.task_id)
        if msg.HasField("kill_policy"):
            kill.kill_policy.CopyFrom(msg.kill_policy)
        self.send(agent.transport, kill)

    # -------------------------------------------------------- status updates
    @on(T.STATUS_UPDATE)
    def _status_update(self, sender: str, msg: wire.StatusUpdateMessage, now: float) -> None:
        """Updates from an agent (`corral.wire` update rows): keep each task's head and
        latest state, relay them to their frameworks. A retry that crossed the
        acknowledgement (sent before the ack reached the agent) is acked again, not
        relayed: the framework has it already, also after a failover."""
        rows = msg.rows
        agent = self.agents.get(self.agents_by_transport.get(sender, ""))
        if agent is None:
            self.counters["invalid_status_updates"] += len(rows)
            return
        relayed, reacks, unknown = _core.master_updates(rows, agent, self.frameworks, HEALTHY_OF, self._set_latest_state)
        if self.operator_events is not None:
            self.operator_events.rows(rows)
        self._until_sample -= 1
        if not self._until_sample:
            self._until_sample = RELAY_SAMPLE_EVERY
            if rows:
                self.relay_samples.append((now, rows[0][5]))
        frameworks = self.frameworks
        for fid, fw_rows in relayed.items():
            fw = frameworks.get(fid)
            if fw is not None and fw.connected:
                fw.status_updates += len(fw_rows)
                if len(fw_rows) == len(rows):  # every row, to one framework: the bytes as they came
                    self.send(fw.transport, wire.Updates.relay(msg))
                else:
                    self.send_rows(fw.transport, _UPDATES, fw_rows)
        if reacks:
            self.send_rows(agent.transport, agent.ack_kind, reacks)
        counters = self.counters
        counters["status_updates"] += len(rows) - unknown - len(reacks)
        if unknown:
            counters["invalid_status_updates"] += unknown
        if reacks:
            counters["acknowledged_retries"] += len(reacks)

    @on(T.ACKNOWLEDGE)
    def _acknowledge(self, sender: str, msg: wire.Acknowledge, now: float) -> None:
        """The framework acknowledged updates: tell their agents; forget each task whose
        terminal update that was. (A task we already forgot still has an agent waiting
        for the ack: it is forwarded.)"""
        fw = self._framework_from(sender, msg.framework_id)
        if fw is None:
            return
        forwarded, finished, invalid = _core.master_acks(msg.rows, fw.id, fw.tasks, self.agents, TERMINAL_STATES)
        for task in finished:
            self._forget_task(task)
        agents = self.agents
        for agent_id, acks in forwarded.items():
            agent = agents[agent_id]
            if agent.state is _AGENT_REGISTERED:
                self.send_rows(agent.transport, agent.ack_kind, acks)
        fw.acknowledgements += len(msg.rows) - invalid
        counters = self.counters
        counters["acknowledgements"] += len(msg.rows) - invalid
        if invalid:
            counters["invalid_acknowledgements"] += invalid

    def _forget_task(self, task: Task) -> None:
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.pop((task.framework_id, task.id), None)
        fw = self.frameworks.get(task.framework_id)
        if fw is not None and fw.tasks.get(task.id) is task:
            del fw.tasks[task.id]
            fw.completed.append(task)
            del fw.completed[: -self.config.max_completed_tasks]

    def _master_update(self, task: Task, state: int, reason: int, message: str, now: float, *, forget: bool) -> None:
        """A master-generated (unacknowledged, at-most-once) update about a known task;
        it joins the task's history."""
        self._set_latest_state(task, self.agents.get(task.agent_id), state)
        self._record_status(task, state, reason, message, now)
        fw = self.frameworks.get(task.framework_id)
        if fw is not None:
            self._reply_status(fw, task.id, for_framework(fw.info, state), reason, message, now, agent_id=task.agent_id)
        if forget:
            self._forget_task(task)

    def _record_status(self, task: Task, state: int, reason: int, message: str, now: float) -> None:
        """A status of the master's own joins the task's history (and operators are told)."""
        status = new_status(task.id, state, SOURCE_MASTER, now, reason=reason, message=message, agent_id=task.agent_id)
        row = status_row(task.framework_id, status)
        statuses = task.statuses
        if len(statuses) >= _core.MAX_TASK_STATUSES:
            del statuses[1]
        statuses.append(row[5])
        if self.operator_events is not None:
            self.operator_events.rows([row])

    def _reply_status(self, fw: Framework, task_id: str, state: int, reason: int, message: str, now: float,
                      *, agent_id: str | None = None) -> None:
        state = for_framework(fw.info, state)
        status = new_status(task_id, state, SOURCE_MASTER, now, reason=reason, message=message, agent_id=agent_id)
        if fw.connected:
            self.send_row(fw.transport, _UPDATES, status_row(fw.id, status))

    # --------------------------------------------------------- reconciliation
    @on(T.RECONCILE)
    def _reconcile(self, sender: str, msg: pb.Reconcile, now: float) -> None:
        """Answer every task named (or, with none named, every task of the framework):
        the latest state of a known task; the Mesos answer for one the master does not
        know, by what it knows of the task's agent; nothing yet for a task whose agent
        has not reregistered since this master started. Agents are asked about the
        tasks that are still STAGING (`_ask_agents_about_staging`)."""
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        self.counters["reconcile_calls"] += 1
        fw.reconcile_calls += 1
        fw.last_reconcile = now
        if not fw.connected or not fw.transport:
            return  # answers go to a connected framework only: nothing else to do
        answers = _Answers(self.send, fw.transport, fw.id)
        answer = self._known_task_answerer(fw, answers, now)
        if not msg.tasks:
            for task in fw.tasks.values():
                answer(task)
            answers.flush()
            self._ask_agents_about_staging(fw, fw.tasks.values())
            return
        tasks = fw.tasks
        known: list[Task] = []
        unknown = _answer_fields(now, "reconciliation: task unknown to the master")
        aware = partition_aware(fw.info)
        for entry in msg.tasks:
            tid = entry.task_id.value
            task = tasks.get(tid)
            if task is not None:
                answer(task)
                known.append(task)
                continue
            agent_id = entry.agent_id.value if entry.HasField("agent_id") else None
            agent = self.agents.get(agent_id) if agent_id else None
            if agent is not None:
                state = pb.TASK_UNREACHABLE if agent.state is AgentState.UNREACHABLE else pb.TASK_GONE
            elif agent_id in self.recovering:
                continue  # its agent has not reregistered since this master started: nothing yet
            elif agent_id in self.gone:
                state = pb.TASK_GONE_BY_OPERATOR
            elif agent_id in self.unreachable_since:
                state = pb.TASK_UNREACHABLE
            else:
                state = pb.TASK_UNKNOWN
            answers.add(unknown, tid, state if aware or state not in PARTITION_AWARE_STATES else pb.TASK_LOST,
                        agent_id, HEALTH_UNREPORTED)
        answers.flush()
        self._ask_agents_about_staging(fw, known)

    def _ask_agents_about_staging(self, fw: Framework, tasks: Iterable[Task]) -> None:
        """Tasks still STAGING that a framework asks about: their agents never reported
        them, and their launch may have been lost on the way (a connection cut shorter
        than the heartbeat timeout drops what it carried, and the agent does not
        reregister). Ask each agent (`ReconcileTasks`, after the launch on the same
        ordered connection): it answers a task it does not have with a reliable
        TASK_DROPPED, so the task does not stay STAGING for ever."""
        staging: dict[str, list[str]] = {}
        for task in tasks:
            if task.state == pb.TASK_STAGING and task.status_update_state == pb.TASK_STAGING:
                staging.setdefault(task.agent_id, []).append(task.id)
        for agent_id, tids in staging.items():
            agent = self.agents.get(agent_id)
            if agent is not None and agent.state is AgentState.REGISTERED:
                self.send(agent.transport, pb.ReconcileTasks(framework_id=pb.FrameworkID(value=fw.id),
                                                             task_ids=[pb.TaskID(value=t) for t in tids],
                                                             framework=fw.info))

    def _known_task_answerer(self, fw: Framework, answers: _Answers, now: float) -> Callable[[Task], None]:
        """answer(task): add the reconciliation answer for one of `fw`'s known tasks.

        The answers of one reconcile call differ only in task, agent, state and health:
        each is those written before the fields they share (`_core.answer_status`), no
        protobuf object per answer."""
        shared = _answer_fields(now, "reconciliation")
        aware = partition_aware(fw.info)
        agents = self.agents
        add = answers.add
        unreachable = AgentState.UNREACHABLE
        health = {None: HEALTH_UNREPORTED, True: HEALTHY, False: UNHEALTHY}

        def answer(task: Task) -> None:
            state = task.status_update_state
            aid = task.agent_id
            agent = agents.get(aid)
            if agent is not None and agent.state is unreachable:
                state = pb.TASK_UNREACHABLE
            if not aware and state in PARTITION_AWARE_STATES:
                state = pb.TASK_LOST
            add(shared, task.id, state, aid, health[task.healthy])

        return answer

    # ------------------------------------------------------ framework messages
    @on(T.FRAMEWORK_TO_EXECUTOR)
    def _framework_to_executor(self, sender: str, msg: pb.FrameworkToExecutor, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        agent = self.agents.get(msg.agent_id.value)
        if fw is None or agent is None or agent.state is not AgentState.REGISTERED:
            return  # best effort
        self.send(agent.transport, msg)

    @on(T.EXECUTOR_TO_FRAMEWORK)
    def _executor_to_framework(self, sender: str, msg: pb.ExecutorToFramework, now: float) -> None:
        fw = self.frameworks.get(msg.framework_id.value)
        if fw is not None and fw.connected and self.agents_by_transport.get(sender) == msg.agent_id.value:
            self.send(fw.transport, msg)

    @on(T.EXITED_EXECUTOR)
    def _exited_executor(self, sender: str, msg: pb.ExitedExecutor, now: float) -> None:
        fw = self.frameworks.get(msg.framework_id.value)
        if fw is not None and fw.connected and self.agents_by_transport.get(sender) == msg.agent_id.value:
            self.send(fw.transport, pb.Failure(agent_id=msg.agent_id, executor_id=msg.executor_id, status=msg.status))

    # ------------------------------------------------------------------ views
    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view of the whole master (the /state endpoint)."""
        return state_view(self)


#: reconcile answers travel in Updates messages of at most this many updates each
ANSWERS_PER_MESSAGE = 1000


class _Answers:
    """The answers to one reconcile call, in Updates messages of at most
    ANSWERS_PER_MESSAGE rows (the master's own updates: no uuid, never acknowledged)."""

    __slots__ = ("_send", "_to", "_framework_id", "_batch")

    def __init__(self, send: Callable[[str, Any], None], to: str, framework_id: str) -> None:
        self._send = send
        self._to = to
        self._framework_id = framework_id
        self._batch = Batch(to, _UPDATES)

    def add(self, shared: bytes, task_id: str, state: int, agent_id: str | None, health: int) -> None:
        """Answer `state` for a task: a TaskStatus of the task's ids, state and health
        and the `shared` fields (`_answer_fields`)."""
        batch = self._batch
        batch.rows.append((self._framework_id, "", task_id, state, b"",
                           _core.answer_status(task_id, state, agent_id, health, shared), health, state))
        if len(batch.rows) == ANSWERS_PER_MESSAGE:
            self.flush()

    def flush(self) -> None:
        """Send what was answered since the last message."""
        if self._batch.rows:
            self._send(self._to, self._batch.message())
            self._batch = Batch(self._to, _UPDATES)


def _answer_fields(now: float, message: str) -> bytes:
    """What every answer to one reconcile call has in common (source, reason, time,
    message), serialised: the tail of each answer's TaskStatus."""
    return pb.TaskStatus(source=SOURCE_MASTER, timestamp=now, reason=Reason.REASON_RECONCILIATION,
                         message=message).SerializePartialToString()
