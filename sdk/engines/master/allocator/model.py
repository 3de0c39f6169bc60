"""The allocator's vocabulary and records: role names and weights (checked), scalar
quantities in integer milli-units, an `Allocation` (one offer), the configuration, the
errors, and its records of agents, frameworks, roles and a framework in one of its roles
(`_Client`)."""
from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from corral.resources import Resources, UNRESERVED


_MILLI = 1000


_ROLE_FORBIDDEN = frozenset("()[]{}:;,\"'")


DEFAULT_MIN_ALLOCATABLE: tuple[Mapping[str, float], ...] = ({"cpus": 0.01}, {"mem": 32.0})


Quantities = dict[str, int]


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


_Entry = TypeVar("_Entry", bound=tuple[Any, ...])


def _move(entries: list[_Entry], old: _Entry, new: _Entry) -> None:
    """Replace `old` by `new` in the sorted list `entries`."""
    del entries[bisect_left(entries, old)]
    insort(entries, new)
