"""The master's allocator: hierarchical DRF over agents, frameworks and roles (as in Mesos).

Owns
- The bookkeeping of what is allocated: per framework, per role, per agent, a `Resources`
  value that stays allocated from the moment it is offered until it is recovered (declined,
  left unused by an accept, freed by a finished task, rescinded). Offered and used count
  alike for DRF; the master converts one into the other without telling the allocator.
- The role tree (hierarchical names `a/b/c`), with weights and quota limits.
- Decline filters (`refuse_seconds`), suppression, and (de)activation of agents and
  frameworks.
- `allocate(now)`: one allocation cycle, returning one `Allocation` (one offer) per
  (framework, agent, role) it hands resources to.

It does no I/O and never reads a clock: every time-dependent call takes `now`.

Algorithm (one cycle), agent by agent in the order they were added:
1. Reserved resources first: each role in (or under) a role holding a reservation on the
   agent, in DRF order, offers what is reserved to it or to its ancestors to its first
   eligible framework.
2. Then unreserved resources: roles in DRF order, each offering to its first eligible
   framework, until the agent has nothing allocatable left.
DRF order: at each level of the role tree, children are sorted by weighted dominant share
(dominant share of the subtree's allocation over the cluster total of every scalar the
cluster has, divided by the role's weight), then by name; frameworks subscribed directly to
a role that also has sub-roles compete with those sub-roles as a leaf of the role's own
(Mesos' "virtual leaf", with the role's weight). Within a role, frameworks are sorted by
their own dominant share in that role, then by id.

Invariants
- For every agent, `available + sum of allocations on it == total`; a cycle never offers
  more than `available`.
- A role's allocation (its sub-roles' included) never exceeds its quota or any ancestor's
  quota, scalar by scalar: offers are shrunk to fit the headroom (Mesos' quota limits;
  resources the quota does not name are not limited). A role at its limit of a resource
  an agent has gets nothing from that agent (Mesos would offer the rest, e.g. memory
  without cpus).
- A framework gets nothing while inactive, nothing in a suppressed role, and nothing on an
  agent whose resources a live decline filter contains. Inactive agents offer nothing.
- Nothing below the minimum allocatable (any one of the configured alternatives, default
  0.01 cpus or 32 MB mem) is offered.
- Sorted structures are kept sorted incrementally: an allocation or a recovery moves one
  framework and its role's ancestors with bisection. A change of the cluster total (adding,
  removing or resizing an agent) changes every share; it only marks the shares stale, and
  the next cycle (or snapshot) recomputes them once, in O(frameworks + roles).
- Scalars are kept as integer milli-units (as `Resources` does), so sums are exact.

Where each part lives: `allocator` (the Allocator and its bookkeeping), `cycle` (one
allocation cycle), `sorter` (the DRF order), `model` (names, quantities, records).
"""
from corral.engines.master.allocator.allocator import Allocator
from corral.engines.master.allocator.model import (
    DEFAULT_MIN_ALLOCATABLE,
    Allocation,
    AllocatorConfig,
    AllocatorError,
    RoleError,
    validate_role,
    validate_weight,
)

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "Allocation",
    "Allocator",
    "AllocatorConfig",
    "AllocatorError",
    "RoleError",
    "validate_role",
    "validate_weight",
]
