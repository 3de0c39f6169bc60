"""The master engine: agent and framework registries, offers, the task table, the
status-update relay, reconciliation answers and agent liveness, as a sans-I/O state
machine (`MasterEngine`, composed in `engine` from one part per concern).

Where each rule lives:
- `frameworks`: subscription, failover to a new scheduler, teardown, disconnection;
- `agents`: registration, reregistration (merging an agent's report), removal, pings;
- `offers`: each allocation cycle's offers, declines, rescinds, revive and suppress;
  `allocator` is the hierarchical DRF allocator, `operations` the offer operations
  that change an agent's resources (RESERVE, UNRESERVE, CREATE, DESTROY);
- `tasks`: launches (an Accept's operations and tasks) and kills;
- `status`: how the master relays an update and its acknowledgement (the per-row
  loops are in `_status`, compiled);
- `reconciliation`: the answers to Reconcile calls;
- `operator`: the operator endpoints' calls, and the events the engine keeps for
  operators while someone listens (the daemon's event stream);
- `registry`: what the master's registry keeps and the actions that write it;
- `leadership`: a candidacy's election rules among several masters (the daemon's
  contender and the simulator feed it; the engine never sees it);
- `records`: the master's records of agents, frameworks (active and completed), offers
  and tasks (each with its status history);
- `snapshot`: the JSON views of tasks, agents, frameworks and the whole master.

Invariants:
- a resource of an agent is in exactly one place: available, offered (one offer), or
  used by a task whose latest state is not terminal;
- a task is forgotten only once its terminal update has been acknowledged, or when no
  agent has it any more (its agent was removed, or reregistered without it);
- messages from a framework are honoured only from its current transport (a failed-over
  scheduler replaces the old one, which is told so).
"""
from corral.engines.master.engine import MasterConfig, MasterEngine
from corral.engines.master.records import Agent, AgentState, Framework, MasterTimer, Offer, Task
from corral.engines.master.registry import (
    REGISTRY_ACTIONS,
    AgentRecordState,
    ForgetAgent,
    ForgetFramework,
    RecordAgent,
    RecordFramework,
    RecordQuota,
    RecordWeight,
    RegistryState,
    apply_to_registry,
)

__all__ = [
    "REGISTRY_ACTIONS",
    "Agent",
    "AgentRecordState",
    "AgentState",
    "ForgetAgent",
    "ForgetFramework",
    "Framework",
    "MasterConfig",
    "MasterEngine",
    "MasterTimer",
    "Offer",
    "RecordAgent",
    "RecordFramework",
    "RecordQuota",
    "RecordWeight",
    "RegistryState",
    "Task",
    "apply_to_registry",
]
