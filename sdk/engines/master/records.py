"""What the master keeps of the cluster: its records of agents, frameworks, offers and
tasks (tasks are `MasterTask` records, made for the status path's loops: see `_status`)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from corral.net import wire
from corral.engines.master._status import MasterTask
from corral.protos import corral_pb2 as pb
from corral.resources import Resources


class MasterTimer(enum.Enum):
    """The master engine's timers (`Engine.set_timer`), each handled where its concern is."""

    ALLOCATE = "allocate"  # the next allocation cycle (offers)
    PING = "ping"  # the next round of pings (agents)
    FAILOVER = "failover"  # a disconnected framework's failover timeout (frameworks; subject: its id)
    REREGISTER_TIMEOUT = "reregister_timeout"  # after a restart, the end of agents' time to come back (agents)
    OFFER_TIMEOUT = "offer_timeout"  # an outstanding offer's timeout (offers; subject: its id)


class AgentState(enum.Enum):
    REGISTERED = "registered"
    #: its connection dropped: no offers until it reregisters; pings decide unreachability
    DISCONNECTED = "disconnected"
    UNREACHABLE = "unreachable"


_AGENT_REGISTERED = AgentState.REGISTERED  # (an Enum member read from its class costs a Python call)


#: what the master keeps of a task (a C type in the compiled build: the status path's
#: loops read and write its fields as struct fields)
Task = MasterTask


@dataclass(slots=True)
class Recovery:
    """What the registry told a master that started (or was elected) about the agents
    it has not seen since: how many were admitted, until when they have to come back
    before offers go out regardless, and the principal each admitted or unreachable one
    was admitted by (only that principal may reregister it)."""

    admitted: int
    deadline: float
    principals: dict[str, str]


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
    #: who registered it, as its connection proved (None: links not authenticated);
    #: only that principal speaks for it
    principal: str | None = None
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
    #: who subscribed it, as its connection proved (None: links not authenticated);
    #: only that principal speaks for it
    principal: str | None = None

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
