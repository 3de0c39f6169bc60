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
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from corral.resources import UNRESERVED, Resources

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

_MILLI = 1000
_ROLE_FORBIDDEN = frozenset("()[]{}:;,\"'")

DEFAULT_MIN_ALLOCATABLE: tuple[Mapping[str, float], ...] = ({"cpus": 0.01}, {"mem": 32.0})
"""Mesos' default `--min_allocatable_resources=cpus:0.01|mem:32`: either one suffices."""

Quantities = dict[str, int]
"""Scalar totals by resource name, in milli-units."""


class AllocatorError(ValueError):
    """A call the allocator cannot honour: unknown or duplicate ids, bad weights or quotas,
    resources that were never allocated."""


class RoleError(AllocatorError):
    """An invalid role name; the message names it."""


def validate_role(role: str) -> str:
    """Return `role` if it is a valid (hierarchical) role name, else raise `RoleError`.

    Rules (Mesos', plus the characters corral's resource syntax reserves): not empty; `*`
    only as the whole name; no leading or trailing `/`; no empty, `.` or `..` segment; no
    whitespace or control characters; no leading `-`; none of `()[]{}:;,"'`.
    """
    if not isinstance(role, str) or not role:
        raise RoleError(f"invalid role {role!r}: empty")
    if role == UNRESERVED:
        return role
    if role.startswith("/") or role.endswith("/"):
        raise RoleError(f"invalid role {role!r}: starts or ends with '/'")
    if role.startswith("-"):
        raise RoleError(f"invalid role {role!r}: starts with '-'")
    for char in role:
        if char.isspace() or not char.isprintable():
            raise RoleError(f"invalid role {role!r}: contains whitespace or a control character")
        if char in _ROLE_FORBIDDEN:
            raise RoleError(f"invalid role {role!r}: contains {char!r}")
    for segment in role.split("/"):
        if segment in ("", ".", ".."):
            raise RoleError(f"invalid role {role!r}: has an invalid segment {segment!r}")
        if "*" in segment:
            raise RoleError(f"invalid role {role!r}: '*' is only allowed as the whole role")
    return role


def validate_weight(role: str, weight: object) -> float:
    """`weight` as a float if it is a finite positive number (not a bool), else raise
    `AllocatorError` naming it and `role`."""
    if (isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight)
            or not weight > 0):
        raise AllocatorError(f"weight {weight!r} of role {role!r} is not a positive number")
    return float(weight)


def _quantities(resources: Resources) -> Quantities:
    """Scalar totals of `resources` by name, in milli-units (ranges and sets are skipped)."""
    out: Quantities = {}
    for name in resources.names():
        milli = round(resources.scalar(name) * _MILLI)
        if milli:
            out[name] = milli
    return out


def _add(into: Quantities, more: Quantities) -> None:
    for name, milli in more.items():
        into[name] = into.get(name, 0) + milli


def _subtract(into: Quantities, less: Quantities) -> None:
    for name, milli in less.items():
        left = into.get(name, 0) - milli
        if left:
            into[name] = left
        else:
            del into[name]


def _view(quantities: Mapping[str, int]) -> dict[str, float]:
    return {name: quantities[name] / _MILLI for name in sorted(quantities)}


def _is_within(role: str, ancestor: str) -> bool:
    """Whether `role` is `ancestor` or one of its descendants."""
    return role == ancestor or role.startswith(ancestor + "/")


@dataclass(frozen=True)
class Allocation:
    """One offer: `resources` of `agent_id` allocated to `framework_id` in `role`."""

    framework_id: str
    agent_id: str
    role: str
    resources: Resources


@dataclass
class AllocatorConfig:
    """`min_allocatable`: alternatives (any one suffices), each a set of scalar minimums
    that must all be met, as Mesos' `--min_allocatable_resources`."""

    min_allocatable: tuple[Mapping[str, float], ...] = DEFAULT_MIN_ALLOCATABLE


@dataclass(eq=False)
class _Filter:
    expiry: float
    refused: Resources


@dataclass(eq=False)
class _Agent:
    id: str
    total: Resources
    quantities: Quantities
    available: Resources
    #: scalars of `available`
    free: Quantities
    #: roles holding reservations in `total`
    reservation_roles: frozenset[str]
    active: bool = True
    #: clients holding an allocation here, and clients with a decline filter here
    holders: dict[_Client, None] = field(default_factory=dict)
    filtered: dict[_Client, None] = field(default_factory=dict)


@dataclass(eq=False)
class _Framework:
    id: str
    clients: dict[str, _Client]
    active: bool = True


@dataclass(eq=False)
class _Role:
    name: str
    parent: _Role | None
    weight: float = 1.0
    quota: Resources | None = None
    limits: Quantities = field(default_factory=dict)
    children: dict[str, _Role] = field(default_factory=dict)
    #: allocation of the whole subtree, and of the frameworks subscribed to this role
    alloc: Quantities = field(default_factory=dict)
    own: Quantities = field(default_factory=dict)
    #: every framework subscribed to this role, by framework id
    members: dict[str, _Client] = field(default_factory=dict)
    #: offerable (active, unsuppressed) frameworks of this role, sorted by (share, id)
    clients: list[tuple[float, str, _Client]] = field(default_factory=list)
    #: children and this role's own leaf (entry naming this node), sorted by (share, name)
    order: list[tuple[float, str, _Role]] = field(default_factory=list)
    #: this node's entry in the parent's `order`, and its own leaf's entry in `order`
    #: (set when the node joins the tree; the root has neither)
    entry: tuple[float, str, _Role] = field(init=False)
    leaf: tuple[float, str, _Role] = field(init=False)
    #: offerable clients in the subtree (a walk skips subtrees without any)
    offerable: int = 0

    def chain(self) -> Iterator[_Role]:
        """This role and its ancestors, the root excluded."""
        node: _Role | None = self
        while node is not None and node.parent is not None:
            yield node
            node = node.parent


@dataclass(eq=False)
class _Client:
    """A framework in one of its roles."""

    framework: _Framework
    role: _Role
    alloc: Quantities = field(default_factory=dict)
    held: dict[str, Resources] = field(default_factory=dict)
    filters: dict[str, _Filter] = field(default_factory=dict)
    suppressed: bool = False
    entry: tuple[float, str, _Client] | None = None


_Offers = dict[tuple[_Client, str], Resources]
"""What a cycle hands out, by (client, agent id), merged into one offer each."""
_Entry = TypeVar("_Entry", bound=tuple[Any, ...])


def _move(entries: list[_Entry], old: _Entry, new: _Entry) -> None:
    """Replace `old` by `new` in the sorted list `entries`."""
    del entries[bisect_left(entries, old)]
    insort(entries, new)


class Allocator:
    """Hierarchical DRF allocator; see the module docstring."""

    def __init__(self, config: AllocatorConfig | None = None) -> None:
        self.config = config or AllocatorConfig()
        self._minimums: tuple[Quantities, ...] = tuple(
            {name: round(amount * _MILLI) for name, amount in alternative.items()}
            for alternative in self.config.min_allocatable
        )
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._root = _Role("", None)
        self._roles: dict[str, _Role] = {}
        self._totals: Quantities = {}
        #: (name, 1 / cluster total) for every scalar the cluster has
        self._inverse: tuple[tuple[str, float], ...] = ()
        self._stale = False

    # ------------------------------------------------------------------ agents

    def add_agent(self, agent_id: str, total: Resources) -> None:
        if agent_id in self._agents:
            raise AllocatorError(f"agent {agent_id!r} is already added")
        quantities = _quantities(total)
        self._agents[agent_id] = _Agent(
            agent_id, total, quantities, total, dict(quantities), self._reservation_roles(total)
        )
        _add(self._totals, quantities)
        self._stale = True

    def remove_agent(self, agent_id: str) -> None:
        """Forget the agent: its allocations and the filters on it vanish with it."""
        agent = self._agent(agent_id)
        for client in agent.holders:
            held = client.held.pop(agent_id)
            self._release(client, _quantities(held))
        for client in agent.filtered:
            del client.filters[agent_id]
        del self._agents[agent_id]
        _subtract(self._totals, agent.quantities)
        self._stale = True

    def update_agent(self, agent_id: str, total: Resources) -> None:
        """Change the agent's total (e.g. after RESERVE / UNRESERVE / CREATE / DESTROY on
        resources nobody holds). What is allocated on it must still fit."""
        agent = self._agent(agent_id)
        allocated = Resources()
        for client in agent.holders:
            allocated = allocated + client.held[agent_id]
        if not total.contains(allocated):
            raise AllocatorError(
                f"new total {total} of agent {agent_id!r} lacks what is allocated on it: {allocated}"
            )
        self._set_total(agent, total, total - allocated)

    def activate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = True

    def deactivate_agent(self, agent_id: str) -> None:
        """An unreachable agent: it stays in the cluster total but offers nothing."""
        self._agent(agent_id).active = False

    def update_allocation(
        self, framework_id: str, agent_id: str, consumed: Resources, converted: Resources,
        role: str | None = None,
    ) -> None:
        """An operation on allocated resources (RESERVE, UNRESERVE, CREATE, DESTROY applied
        to an offer): `consumed`, part of the framework's allocation on the agent, becomes
        `converted` there, and in the agent's total. The scalar quantities must not change."""
        agent = self._agent(agent_id)
        client = self._holder(framework_id, agent_id, consumed, role)
        if _quantities(consumed) != _quantities(converted):
            raise AllocatorError(f"converting {consumed} into {converted} changes quantities")
        client.held[agent_id] = client.held[agent_id] - consumed + converted
        self._set_total(agent, agent.total - consumed + converted, agent.available)

    def add_allocation(self, framework_id: str, agent_id: str, resources: Resources, role: str | None = None) -> None:
        """Resources already in use on the agent by the framework (tasks the master learns
        when an agent reregisters, e.g. after a master failover): mark them held, in `role`
        or the framework's first role by name."""
        agent = self._agent(agent_id)
        clients = self._clients(framework_id, None if role is None else [role])
        client = min(clients, key=lambda c: c.role.name)
        if not agent.available.contains(resources):
            raise AllocatorError(f"agent {agent_id!r} has not {resources} free to allocate (it has {agent.available})")
        self._take(client, agent, resources, _quantities(resources))

    # -------------------------------------------------------------- frameworks

    def add_framework(self, framework_id: str, roles: Iterable[str], active: bool = True) -> None:
        if framework_id in self._frameworks:
            raise AllocatorError(f"framework {framework_id!r} is already added")
        names = list(dict.fromkeys(validate_role(role) for role in roles))
        if not names:
            raise AllocatorError(f"framework {framework_id!r} has no role")
        framework = _Framework(framework_id, {})
        framework.active = active
        self._frameworks[framework_id] = framework
        for name in names:
            role = self._role(name)
            client = _Client(framework, role)
            framework.clients[name] = client
            role.members[framework_id] = client
            if active:
                self._list(client)

    def remove_framework(self, framework_id: str) -> None:
        """Forget the framework; everything allocated to it returns to its agents."""
        framework = self._framework(framework_id)
        for client in framework.clients.values():
            for agent_id, held in client.held.items():
                agent = self._agents[agent_id]
                del agent.holders[client]
                self._give_back(agent, held)
            for agent_id in client.filters:
                del self._agents[agent_id].filtered[client]
            self._release(client, dict(client.alloc))
            self._unlist(client)
            del client.role.members[framework_id]
            self._prune(client.role)
        del self._frameworks[framework_id]

    def activate_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        if not framework.active:
            framework.active = True
            for client in framework.clients.values():
                if not client.suppressed:
                    self._list(client)

    def deactivate_framework(self, framework_id: str) -> None:
        """A disconnected framework: it keeps its allocations but gets no offers."""
        framework = self._framework(framework_id)
        if framework.active:
            framework.active = False
            for client in framework.clients.values():
                self._unlist(client)

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """No more offers to the framework in `roles` (None: all its roles) until revived."""
        for client in self._clients(framework_id, roles):
            if not client.suppressed:
                client.suppressed = True
                self._unlist(client)

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """Offers again in `roles` (None: all its roles), and the decline filters there go."""
        for client in self._clients(framework_id, roles):
            for agent_id in client.filters:
                del self._agents[agent_id].filtered[client]
            client.filters.clear()
            if client.suppressed:
                client.suppressed = False
                if client.framework.active:
                    self._list(client)

    # ------------------------------------------------------------------- roles

    def set_weight(self, role: str, weight: float) -> None:
        weight = validate_weight(role, weight)
        node = self._role(validate_role(role))
        node.weight = weight
        self._reposition(node)
        self._prune(node)

    def set_quota(self, role: str, quota: Resources | None) -> None:
        """Limit the role's allocation (its sub-roles' included) to `quota`'s scalars, by
        name over all reservations; None removes the limit."""
        node = self._role(validate_role(role))
        if quota is None:
            node.quota, node.limits = None, {}
            self._prune(node)
            return
        limits = _quantities(quota)
        if set(limits) != quota.names():
            raise AllocatorError(f"quota {quota} of role {role!r}: only scalars can be limited")
        node.quota, node.limits = quota, limits

    # ------------------------------------------------------------- allocating

    def allocate(self, now: float) -> list[Allocation]:
        """One allocation cycle: hand out what is available, one offer per (framework,
        agent, role), and mark it allocated."""
        self._refresh()
        offers: _Offers = {}
        if not self._root.offerable:
            return []
        for agent in self._agents.values():
            if not agent.active or not self._allocatable(agent.free):
                continue
            if agent.reservation_roles:
                self._allocate_reserved(agent, now, offers)
                self._allocate_unreserved(agent, now, offers)
            else:
                self._allocate_plain(agent, now, offers)
        return [
            Allocation(client.framework.id, agent_id, client.role.name, resources)
            for (client, agent_id), resources in offers.items()
        ]

    def recover(
        self, framework_id: str, agent_id: str, resources: Resources,
        refuse_seconds: float | None = None, now: float = 0.0, role: str | None = None,
    ) -> None:
        """Give back `resources` the framework holds on the agent (in `role`, or the first
        of its roles, by name, that holds them all). With `refuse_seconds` > 0, the agent's
        resources contained in `resources` are not offered to the framework in that role
        again before `now + refuse_seconds`. Resources of a removed agent or framework are
        already gone: recovering them does nothing."""
        if framework_id not in self._frameworks or agent_id not in self._agents or not resources:
            return
        client = self._holder(framework_id, agent_id, resources, role)
        agent = self._agents[agent_id]
        left = client.held[agent_id] - resources
        if left:
            client.held[agent_id] = left
        else:
            del client.held[agent_id]
            del agent.holders[client]
        self._give_back(agent, resources)
        self._release(client, _quantities(resources))
        if refuse_seconds is not None and refuse_seconds > 0:
            client.filters[agent_id] = _Filter(now + refuse_seconds, resources)
            agent.filtered[client] = None

    # -------------------------------------------------------------- queries

    def allocated(self, framework_id: str, role: str | None = None) -> dict[str, Resources]:
        """What the framework holds (in `role`, or in all its roles), by agent id."""
        out: dict[str, Resources] = {}
        for client in self._clients(framework_id, None if role is None else [role]):
            for agent_id, held in client.held.items():
                out[agent_id] = out.get(agent_id, Resources()) + held
        return out

    def available(self, agent_id: str) -> Resources:
        """What the agent has that nobody holds."""
        return self._agent(agent_id).available

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for `/roles`: every known role, sorted by name, with its
        weight, quota, allocation (scalars, sub-roles included), dominant share (and share
        divided by weight) and subscribed frameworks."""
        self._refresh()
        roles = []
        for name in sorted(self._roles):
            node = self._roles[name]
            share = self._share(node.alloc)
            roles.append({
                "name": name,
                "weight": node.weight,
                "quota": None if node.quota is None else node.quota.to_dict(),
                "allocated": _view(node.alloc),
                "share": share,
                "weighted_share": share / node.weight,
                "frameworks": sorted(node.members),
            })
        return {"total": _view(self._totals), "roles": roles}

    # ------------------------------------------------------- cycle internals

    def _allocate_plain(self, agent: _Agent, now: float, offers: _Offers) -> None:
        """An agent with unreserved resources only. The fast path: the first eligible
        framework of the first role in DRF order takes everything, unless a quota shrinks
        the offer, in which case the next roles get the rest."""
        served: set[_Role] = set()
        while self._allocatable(agent.free):
            for role in self._walk(self._root, served):
                served.add(role)
                offer, quantities = self._fit(role, agent.available, agent.free)
                if offer is not None and self._offer(role, agent, offer, quantities, now, offers):
                    break
            else:
                return

    def _allocate_unreserved(self, agent: _Agent, now: float, offers: _Offers) -> None:
        served: set[_Role] = set()
        while True:
            unreserved = agent.available.unreserved()
            quantities = _quantities(unreserved)
            if not self._allocatable(quantities):
                return
            for role in self._walk(self._root, served):
                served.add(role)
                offer, fitted = self._fit(role, unreserved, quantities)
                if offer is not None and self._offer(role, agent, offer, fitted, now, offers):
                    break
            else:
                return

    def _allocate_reserved(self, agent: _Agent, now: float, offers: _Offers) -> None:
        served: set[_Role] = set()
        while True:
            for role in self._walk(self._root, served, agent.reservation_roles):
                served.add(role)
                usable = agent.available.filter_role(role.name)
                reserved = usable.reserved()
                quantities = _quantities(reserved)
                # as in Mesos, what must be allocatable is all the role may use here, so a
                # reservation of disk alone (a volume) is still offered
                if not quantities or not self._allocatable(_quantities(usable)):
                    continue
                offer, fitted = self._fit(role, reserved, quantities, require_allocatable=False)
                if offer is not None and self._offer(role, agent, offer, fitted, now, offers):
                    break
            else:
                return

    def _walk(
        self, node: _Role, served: set[_Role], reservations: frozenset[str] = frozenset()
    ) -> Iterator[_Role]:
        """Roles with offerable frameworks under `node`, in DRF order, skipping `served`;
        with `reservations`, only roles within one of them (and the paths leading there)."""
        for _, name, child in node.order:
            if child is node:
                if node.clients and node not in served and (
                    not reservations or any(_is_within(name, held) for held in reservations)
                ):
                    yield node
            elif child.offerable and (
                not reservations
                or any(_is_within(name, held) or _is_within(held, name) for held in reservations)
            ):
                yield from self._walk(child, served, reservations)

    def _fit(
        self, role: _Role, resources: Resources, quantities: Quantities, require_allocatable: bool = True
    ) -> tuple[Resources | None, Quantities]:
        """`resources` shrunk to the quota headroom of `role` and its ancestors, and its
        quantities; (None, {}) when what is left is not allocatable, or when the role is
        at its limit of a resource `resources` has (an offer stripped of it, e.g. memory
        without cpus, would serve nobody and split the agent)."""
        caps: dict[str, int] = {}
        for node in role.chain():
            for name, limit in node.limits.items():
                headroom = limit - node.alloc.get(name, 0)
                if quantities.get(name, 0) > headroom:
                    if headroom <= 0:
                        return None, {}
                    if headroom < caps.get(name, headroom + 1):
                        caps[name] = headroom
        if caps:
            resources = resources.cap_scalars({name: cap / _MILLI for name, cap in caps.items()})
            quantities = _quantities(resources)
        if not quantities or (require_allocatable and not self._allocatable(quantities)):
            return None, {}
        return resources, quantities

    def _offer(
        self, role: _Role, agent: _Agent, resources: Resources, quantities: Quantities,
        now: float, offers: _Offers,
    ) -> bool:
        """Allocate `resources` of `agent` to the first framework of `role` that does not
        filter them; False when every framework there does."""
        agent_id = agent.id
        for _, _, client in role.clients:
            refusal = client.filters.get(agent_id)
            if refusal is not None:
                if now < refusal.expiry:
                    if refusal.refused.contains(resources):
                        continue
                else:
                    del client.filters[agent_id]
                    del agent.filtered[client]
            self._take(client, agent, resources, quantities)
            key = (client, agent_id)
            earlier = offers.get(key)
            offers[key] = resources if earlier is None else earlier + resources
            return True
        return False

    def _take(self, client: _Client, agent: _Agent, resources: Resources, quantities: Quantities) -> None:
        held = client.held.get(agent.id)
        if held is None:
            client.held[agent.id] = resources
            agent.holders[client] = None
        else:
            client.held[agent.id] = held + resources
        if resources is agent.available:
            agent.available = Resources()
            agent.free = {}
        else:
            agent.available = agent.available - resources
            _subtract(agent.free, quantities)
        self._charge(client, quantities, _add)

    # ------------------------------------------------------ sorter internals

    def _share(self, quantities: Quantities) -> float:
        """Dominant share of `quantities` over the cluster total."""
        share = 0.0
        for name, inverse in self._inverse:
            milli = quantities.get(name)
            if milli:
                part = milli * inverse
                if part > share:
                    share = part
        return share

    def _charge(
        self, client: _Client, quantities: Quantities,
        apply: Callable[[Quantities, Quantities], None],
    ) -> None:
        """Apply (`_add` or `_subtract`) `quantities` to the client and its role chain, and
        move their sort entries."""
        apply(client.alloc, quantities)
        role = client.role
        if client.entry is not None:
            entry = (self._share(client.alloc), client.framework.id, client)
            _move(role.clients, client.entry, entry)
            client.entry = entry
        apply(role.own, quantities)
        leaf = (self._share(role.own) / role.weight, role.name, role)
        _move(role.order, role.leaf, leaf)
        role.leaf = leaf
        for node in role.chain():
            apply(node.alloc, quantities)
            self._move_entry(node)

    def _release(self, client: _Client, quantities: Quantities) -> None:
        self._charge(client, quantities, _subtract)

    def _give_back(self, agent: _Agent, resources: Resources) -> None:
        agent.available = agent.available + resources
        _add(agent.free, _quantities(resources))

    def _reposition(self, node: _Role) -> None:
        """Recompute the entries of `node` (its own leaf, and itself in its parent)."""
        leaf = (self._share(node.own) / node.weight, node.name, node)
        _move(node.order, node.leaf, leaf)
        node.leaf = leaf
        self._move_entry(node)

    def _move_entry(self, node: _Role) -> None:
        """Recompute the entry of `node` (not the root) in its parent's order."""
        assert node.parent is not None
        entry = (self._share(node.alloc) / node.weight, node.name, node)
        _move(node.parent.order, node.entry, entry)
        node.entry = entry

    def _refresh(self) -> None:
        """After the cluster total changed: recompute every share and re-sort, once."""
        if not self._stale:
            return
        self._inverse = tuple(
            (name, 1.0 / total) for name, total in sorted(self._totals.items()) if total > 0
        )
        for node in self._roles.values():
            node.leaf = (self._share(node.own) / node.weight, node.name, node)
            node.entry = (self._share(node.alloc) / node.weight, node.name, node)
            for client in node.members.values():
                if client.entry is not None:
                    client.entry = (self._share(client.alloc), client.framework.id, client)
        for node in [self._root, *self._roles.values()]:
            node.order = sorted(
                [child.entry for child in node.children.values()]
                + ([node.leaf] if node.parent is not None else [])
            )
            node.clients = sorted(c.entry for c in node.members.values() if c.entry is not None)
        self._stale = False

    def _list(self, client: _Client) -> None:
        """Make the client offerable."""
        if client.entry is None:
            client.entry = (self._share(client.alloc), client.framework.id, client)
            insort(client.role.clients, client.entry)
            for node in client.role.chain():
                node.offerable += 1
            self._root.offerable += 1

    def _unlist(self, client: _Client) -> None:
        if client.entry is not None:
            entries = client.role.clients
            del entries[bisect_left(entries, client.entry)]
            client.entry = None
            for node in client.role.chain():
                node.offerable -= 1
            self._root.offerable -= 1

    def _role(self, name: str) -> _Role:
        """The node of a (validated) role, created with its ancestors if needed."""
        node = self._roles.get(name)
        if node is not None:
            return node
        parent = self._root if "/" not in name else self._role(name.rsplit("/", 1)[0])
        node = _Role(name, parent)
        node.leaf = (0.0, name, node)
        node.order = [node.leaf]
        node.entry = (0.0, name, node)
        insort(parent.order, node.entry)
        parent.children[name] = node
        self._roles[name] = node
        return node

    def _prune(self, node: _Role) -> None:
        """Forget roles that no longer carry anything (no frameworks, sub-roles, weight,
        quota or allocation), from `node` up."""
        while (
            node.parent is not None and not node.members and not node.children
            and node.weight == 1.0 and node.quota is None and not node.alloc
        ):
            parent = node.parent
            del parent.children[node.name]
            del parent.order[bisect_left(parent.order, node.entry)]
            del self._roles[node.name]
            node = parent

    # --------------------------------------------------------------- helpers

    def _allocatable(self, quantities: Quantities) -> bool:
        for minimum in self._minimums:
            for name, milli in minimum.items():
                if quantities.get(name, 0) < milli:
                    break
            else:
                return True
        return False

    def _set_total(self, agent: _Agent, total: Resources, available: Resources) -> None:
        quantities = _quantities(total)
        if quantities != agent.quantities:
            _subtract(self._totals, agent.quantities)
            _add(self._totals, quantities)
            self._stale = True
        agent.total, agent.quantities = total, quantities
        agent.available, agent.free = available, _quantities(available)
        agent.reservation_roles = self._reservation_roles(total)

    @staticmethod
    def _reservation_roles(total: Resources) -> frozenset[str]:
        reserved = total.reserved()
        if not reserved:
            return frozenset()
        return frozenset(
            proto.reservations[-1].role if proto.reservations else proto.role
            for proto in reserved.to_protos()
        )

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AllocatorError(f"unknown agent {agent_id!r}")
        return agent

    def _framework(self, framework_id: str) -> _Framework:
        framework = self._frameworks.get(framework_id)
        if framework is None:
            raise AllocatorError(f"unknown framework {framework_id!r}")
        return framework

    def _clients(self, framework_id: str, roles: Iterable[str] | None) -> list[_Client]:
        framework = self._framework(framework_id)
        if roles is None:
            return list(framework.clients.values())
        clients = []
        for role in roles:
            client = framework.clients.get(role)
            if client is None:
                raise AllocatorError(f"framework {framework_id!r} is not subscribed to role {role!r}")
            clients.append(client)
        return clients

    def _holder(self, framework_id: str, agent_id: str, resources: Resources, role: str | None) -> _Client:
        """The client of the framework holding `resources` on the agent."""
        candidates = self._clients(framework_id, None if role is None else [role])
        for client in sorted(candidates, key=lambda c: c.role.name):
            held = client.held.get(agent_id)
            if held is not None and held.contains(resources):
                return client
        raise AllocatorError(
            f"framework {framework_id!r} does not hold {resources} on agent {agent_id!r}"
            + ("" if role is None else f" in role {role!r}")
        )
