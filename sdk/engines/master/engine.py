"""The master engine: the class that holds the master's state and composes its concerns
(see the package's docstring for which module owns which)."""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from corral.engines.authorization import Authorizer
from corral.engines.base import Engine, Send
from corral.engines.master.agents import AgentsMixin
from corral.engines.master.allocator import Allocator, AllocatorConfig
from corral.engines.master.frameworks import FrameworksMixin
from corral.engines.master.offers import OffersMixin
from corral.engines.master.operator import OperatorEvents, OperatorMixin
from corral.engines.master.peers import PeersMixin
from corral.engines.master.reconciliation import ReconciliationMixin
from corral.engines.master.records import Agent, AgentState, Framework, MasterTimer, Offer, Recovery
from corral.engines.master.registry import (
    ForgetAgent,
    ForgetFramework,
    RecordAgent,
    RecordFramework,
    RecordQuota,
    RecordWeight,
    RegistryState,
)
from corral.engines.master.snapshot import SnapshotMixin
from corral.engines.master.status import StatusMixin
from corral.engines.master.tasks import TasksMixin
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.security.acls import Acls


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
    #: after a master restart or failover: the least time a framework the registry or an
    #: agent names has to resubscribe before its failover timeout may remove it (it must
    #: first find the new master; a longer failover_timeout of its own is kept)
    framework_reregister_timeout: float = 60.0


class MasterEngine(FrameworksMixin, AgentsMixin, OffersMixin, TasksMixin, StatusMixin, ReconciliationMixin,
                   OperatorMixin, SnapshotMixin, PeersMixin, Engine):
    ACTIONS = frozenset({Send, RecordAgent, ForgetAgent, RecordWeight, RecordQuota, RecordFramework, ForgetFramework})

    def __init__(self, master_info: pb.MasterInfo, config: MasterConfig | None = None, now: float = 0.0,
                 registry: RegistryState | None = None, acls: Acls | None = None) -> None:
        """`acls`: what each principal may do (None: everything, as Mesos without ACLs)."""
        super().__init__()
        self.info = master_info
        self.config = config or MasterConfig()
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
            "forged_senders": 0,
        }
        #: removed frameworks, the latest last (operators see them as completed)
        self.completed_frameworks: deque[Framework] = deque(maxlen=self.config.max_completed_frameworks)
        #: how many tasks reached each terminal state (state -> count)
        self.task_ends: dict[int, int] = {}
        #: while operators listen: the events for them (see `corral.engines.master.operator`)
        self.operator_events: OperatorEvents | None = None
        #: (time relayed, serialised TaskStatus) of the first update of one status-update
        #: message in RELAY_SAMPLE_EVERY, the latest 1024 (the relay latency metric's; `status`)
        self.relay_samples: deque[tuple[float, bytes]] = deque(maxlen=1024)
        self._until_sample = 1
        self.authorizer = Authorizer(acls)
        registry = registry or RegistryState()
        #: admitted agents that have not reregistered since this master started
        self.recovering: dict[str, pb.AgentInfo] = dict(registry.admitted)
        self._recovery = Recovery(len(self.recovering), now + self.config.agent_reregister_timeout,
                                  dict(registry.principals))
        #: reconcile questions about tasks of agents in `recovering`, answered once each is
        #: back, unreachable or gone: agent id -> framework id -> task ids
        self.deferred_answers: dict[str, dict[str, set[str]]] = {}
        self.unreachable_since: dict[str, float] = dict(registry.unreachable)
        self.gone: set[str] = set(registry.gone)
        #: the role weights and quota limits an operator set (`operator`), kept in the registry
        self.weights: dict[str, float] = dict(registry.weights)
        self.quotas: dict[str, Resources] = dict(registry.quotas)
        for role, weight in self.weights.items():
            self.allocator.set_weight(role, weight)
        for role, quota in self.quotas.items():
            self.allocator.set_quota(role, quota)
        for fid, info in registry.frameworks.items():
            self._recover_framework(fid, info, now)
        if self.recovering:
            self.set_timer(MasterTimer.REREGISTER_TIMEOUT, self._recovery.deadline)
        self.set_timer(MasterTimer.ALLOCATE, now + self.config.allocation_interval)
        self.set_timer(MasterTimer.PING, now + self.config.ping_interval)

    @property
    def id(self) -> str:
        """The master's id (its MasterInfo's)."""
        return self.info.id

    def _new_id(self, kind: str) -> str:
        return f"{self.id}-{kind}{next(self._ids):04d}"

    def _allocate_soon(self, now: float) -> None:
        self.set_timer(MasterTimer.ALLOCATE, now)

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
