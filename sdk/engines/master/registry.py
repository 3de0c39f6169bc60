"""What the master's registry holds (what must survive a master restart, or a failover
to another master, that agents and frameworks cannot tell it again) and the actions by
which the engine writes it. The master daemon performs them on its SQLite registry
(`corral.master.registry`) or, with several masters, on the registry in ZooKeeper
(`corral.master.zk_registry`); the simulator on an in-memory `RegistryState`
(`apply_to_registry`)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from corral.protos import corral_pb2 as pb
from corral.resources import Resources


class AgentRecordState(enum.Enum):
    """An agent's entry in the registry."""

    ADMITTED = "admitted"
    UNREACHABLE = "unreachable"
    GONE = "gone"


@dataclass
class RegistryState:
    """What the registry knew when the master started (or was elected): admitted agents
    (info), those unreachable (since when), those an operator marked gone, the role
    weights and quota limits an operator set, and the frameworks that subscribed (their
    info: a new master keeps a failover timer for each until it subscribes again), and the
    principal each admitted or unreachable agent was admitted by (with authentication on:
    only that principal may reregister it)."""

    admitted: dict[str, pb.AgentInfo] = field(default_factory=dict)
    unreachable: dict[str, float] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    weights: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, Resources] = field(default_factory=dict)
    frameworks: dict[str, pb.FrameworkInfo] = field(default_factory=dict)
    principals: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RecordAgent:
    """Write the agent's registry entry (before anything that depends on it is sent);
    `info` None keeps the stored info, `principal` None the stored principal (the one
    the agent was admitted by)."""

    agent_id: str
    info: pb.AgentInfo | None
    record: AgentRecordState
    since: float
    principal: str | None = None


@dataclass(slots=True)
class ForgetAgent:
    """Remove the agent from the registry."""

    agent_id: str


@dataclass(slots=True)
class RecordWeight:
    """Keep a role's weight."""

    role: str
    weight: float


@dataclass(slots=True)
class RecordQuota:
    """Keep a role's quota limit (None: the role has none any more)."""

    role: str
    quota: Resources | None


@dataclass(slots=True)
class RecordFramework:
    """Keep a subscribed framework's info (its failover timeout above all)."""

    framework_id: str
    info: pb.FrameworkInfo


@dataclass(slots=True)
class ForgetFramework:
    """The framework was removed (torn down, or its failover timeout passed)."""

    framework_id: str


REGISTRY_ACTIONS = (RecordAgent, ForgetAgent, RecordWeight, RecordQuota, RecordFramework, ForgetFramework)
RegistryAction = RecordAgent | ForgetAgent | RecordWeight | RecordQuota | RecordFramework | ForgetFramework


def apply_to_registry(state: RegistryState, action: RegistryAction) -> None:
    """Perform a registry action on an in-memory registry (the simulator keeps one)."""
    if isinstance(action, RecordWeight):
        state.weights[action.role] = action.weight
        return
    if isinstance(action, RecordQuota):
        if action.quota is None:
            state.quotas.pop(action.role, None)
        else:
            state.quotas[action.role] = action.quota
        return
    if isinstance(action, RecordFramework):
        state.frameworks[action.framework_id] = action.info
        return
    if isinstance(action, ForgetFramework):
        state.frameworks.pop(action.framework_id, None)
        return
    agent_id = action.agent_id
    state.unreachable.pop(agent_id, None)
    if isinstance(action, ForgetAgent) or action.record is AgentRecordState.GONE:
        state.principals.pop(agent_id, None)
    elif action.principal is not None:
        state.principals[agent_id] = action.principal
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
