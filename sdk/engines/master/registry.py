"""What the master's registry holds (what must survive a master restart that agents and
frameworks cannot tell it again) and the actions by which the engine writes it. The
master daemon performs them on its SQLite registry (`corral.master.registry`), the
simulator on an in-memory `RegistryState` (`apply_to_registry`)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from corral.protos import corral_pb2 as pb


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
