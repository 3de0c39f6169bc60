"""What identifies a resource and what it holds: `ResourceKey` (name, value kind, role,
reservations, disk info), values (integer milli-unit scalars, coalesced ranges, sets)
with their arithmetic, and `ResourceError`."""
from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Union

from corral.protos import corral_pb2


UNRESERVED = "*"
"""The role of unreserved resources (Mesos' `*`)."""

_MILLI = 1000
_UINT64_MAX = 2**64 - 1


class ResourceError(ValueError):
    """A resource, resource string, attribute or operation that does not parse or make sense."""


class ValueKind(enum.IntEnum):
    """`corral.Value.Type`."""

    SCALAR = corral_pb2.Value.SCALAR
    RANGES = corral_pb2.Value.RANGES
    SET = corral_pb2.Value.SET
    TEXT = corral_pb2.Value.TEXT


class ReservationType(enum.IntEnum):
    """`corral.Resource.ReservationInfo.Type`."""

    STATIC = corral_pb2.Resource.ReservationInfo.STATIC
    DYNAMIC = corral_pb2.Resource.ReservationInfo.DYNAMIC


class VolumeMode(enum.IntEnum):
    """`corral.Volume.Mode`."""

    RW = corral_pb2.Volume.RW
    RO = corral_pb2.Volume.RO


class Reservation(NamedTuple):
    """One level of a reservation stack; `principal` is "" when unset."""

    type: ReservationType
    role: str
    principal: str = ""


class Persistence(NamedTuple):
    """A persistent volume's identity; `principal` is "" when unset."""

    id: str
    principal: str = ""


class Volume(NamedTuple):
    """Where a disk resource is mounted in the container; `host_path` is "" when unset."""

    container_path: str
    host_path: str = ""
    mode: VolumeMode = VolumeMode.RW


class Disk(NamedTuple):
    """`corral.Resource.DiskInfo`; at least one of the two is set."""

    persistence: Persistence | None
    volume: Volume | None


class ResourceKey(NamedTuple):
    """What makes two resources the same kind of thing: only equal keys add up.

    `role` is the role the resource is reserved to (the last reservation's role), or
    `UNRESERVED`. `reservations` is the reservation stack, empty for unreserved resources;
    a static reservation made through the `role` field is `(Reservation(STATIC, role),)`.
    """

    name: str
    kind: ValueKind
    role: str
    reservations: tuple[Reservation, ...]
    disk: Disk | None


_Span = tuple[int, int]
_Spans = tuple[_Span, ...]
# The stored value of one entry: milli-units, coalesced spans, or set items.
_Value = Union[int, _Spans, frozenset[str]]
_Items = dict[ResourceKey, _Value]


class _Invalid(Exception):
    """Internal: a reason something is invalid, re-raised as ResourceError with context."""

    def __init__(self, reason: str, label: str = "", part: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.label = label
        self.part = part

    def detail(self) -> str:
        """The reason, prefixed by the precise part it is about when there is one."""
        return f"{self.label} {self.part!r}: {self.reason}" if self.label else self.reason


def _error(label: str, part: str, contexts: Sequence[str], reason: str) -> ResourceError:
    """`LABEL 'part' in 'context' in 'outer': reason`, skipping a context equal to the last."""
    message = f"{label} {part!r}"
    last = part
    for context in contexts:
        if context != last:
            message += f" in {context!r}"
            last = context
    return ResourceError(f"{message}: {reason}")


# ------------------------------------------------------------------ keys and values


@functools.lru_cache(maxsize=4096)
def _simple_key(name: str, kind: ValueKind, role: str) -> ResourceKey:
    """The (shared) key of an unreserved or statically reserved resource without disk info."""
    reservations = () if role == UNRESERVED else (Reservation(ReservationType.STATIC, role),)
    return ResourceKey(name, kind, role, reservations, None)


def _is_simple(key: ResourceKey) -> bool:
    """Whether the Mesos text syntax can express this key (`name` or `name(role)`)."""
    return key == _simple_key(key.name, key.kind, key.role)


def _to_milli(number: float) -> int:
    """A non-negative finite number in milli-units, rounded half up (Mesos: 0.001)."""
    return int(number * _MILLI + 0.5)


def _milli_text(milli: int) -> str:
    whole, fraction = divmod(milli, _MILLI)
    return str(whole) if not fraction else f"{whole}.{fraction:03d}".rstrip("0")


def _spans_text(spans: Iterable[_Span]) -> str:
    return "[" + ",".join(f"{begin}-{end}" for begin, end in spans) + "]"


def _items_text(items: Iterable[str]) -> str:
    return "{" + ",".join(items) + "}"


def _value_text(value: _Value) -> str:
    if isinstance(value, int):
        return _milli_text(value)
    if isinstance(value, tuple):
        return _spans_text(value)
    return _items_text(sorted(value))


def _key_text(key: ResourceKey) -> str:
    return key.name if key.role == UNRESERVED else f"{key.name}({key.role})"


def _coalesce(spans: list[_Span]) -> _Spans:
    """Sorted, disjoint, non-adjacent spans covering exactly the input spans."""
    spans.sort()
    merged: list[_Span] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return tuple(merged)


def _spans_union(mine: _Spans, theirs: _Spans) -> _Spans:
    return _coalesce([*mine, *theirs])


def _spans_contain(mine: _Spans, theirs: _Spans) -> bool:
    """Whether every span of `theirs` lies inside one span of `mine` (both coalesced)."""
    index = 0
    count = len(mine)
    for begin, end in theirs:
        while index < count and mine[index][1] < begin:
            index += 1
        if index == count or mine[index][0] > begin or mine[index][1] < end:
            return False
    return True


def _spans_subtract(mine: _Spans, theirs: _Spans) -> _Spans:
    """`mine` minus `theirs` (both coalesced); a span may split in two."""
    result: list[_Span] = []
    index = 0
    count = len(theirs)
    for begin, end in mine:
        while index < count and theirs[index][1] < begin:
            index += 1
        cursor = index
        while cursor < count and theirs[cursor][0] <= end:
            cut_begin, cut_end = theirs[cursor]
            if cut_begin > begin:
                result.append((begin, cut_begin - 1))
            begin = cut_end + 1
            if begin > end:
                break
            cursor += 1
        if begin <= end:
            result.append((begin, end))
    return tuple(result)


def _is_persistent(key: ResourceKey) -> bool:
    return key.disk is not None and key.disk.persistence is not None


def _merge(items: _Items, key: ResourceKey, value: _Value) -> None:
    """Add one validated, non-empty entry into `items` (which the caller owns)."""
    mine = items.get(key)
    if mine is None:
        items[key] = value
    elif type(value) is int:
        if _is_persistent(key):
            raise ResourceError(f"persistent volume {_volume_id(key)!r} is added twice")
        items[key] = mine + value  # type: ignore[operator]
    elif type(value) is tuple:
        items[key] = _spans_union(mine, value)  # type: ignore[arg-type]
    else:
        items[key] = mine | value  # type: ignore[operator]


def _volume_id(key: ResourceKey) -> str:
    assert key.disk is not None and key.disk.persistence is not None
    return key.disk.persistence.id
