"""corral's resource model: what agents offer, frameworks are allocated and tasks consume.

Owns
- `Resources`: an immutable multiset of resources, keyed by (name, value kind, role,
  reservations, disk info), with the arithmetic the allocator and the engines need
  (`+`, `-`, `contains`, role filters, flattening).
- Parsing: the Mesos text syntax (`cpus(role):4;mem:1024;ports:[31000-32000];gpus:{a,b}`)
  and the protobuf JSON mapping of a list of `corral.Resource` (text starting with `[`);
  conversion to and from `corral_pb2.Resource`; builders for single protos.
- Agent attributes (`rack:r1;level:3.5`): parsing into `corral_pb2.Attribute` and a JSON view.
- `detect_resources`: what this machine offers by default (the Mesos rule).

Invariants of a `Resources` value
- One entry per key. Scalars are integer milli-units (Mesos rounds scalars to 0.001), so
  arithmetic is exact: `0.1 + 0.2 == 0.3`. Ranges are sorted, disjoint and coalesced
  (`[1-3,4-6]` is stored as `[1-6]`). Sets are frozensets.
- Zero scalars and empty ranges or sets are never stored: they vanish.
- Every entry was validated on the way in (`parse`, `from_protos`); arithmetic keeps the
  invariants, so no operation re-normalises what it did not touch.
- A value is never mutated after construction.

Semantics follow Mesos: adding ranges or sets is a union (adding ports a value already holds
does not hold them twice), subtraction requires containment (corral raises `ResourceError`
where Mesos would silently clamp), and resources with different keys never mix: `cpus(r):1`
does not contain `cpus:1`. A persistent volume is indivisible: it is added or subtracted
whole. Anything malformed raises `ResourceError` naming the bad part.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Union

from google.protobuf import json_format

from corral.protos import corral_pb2

__all__ = [
    "DEFAULT_PORTS",
    "DISK_KEEP_MB",
    "MEM_KEEP_MB",
    "UNRESERVED",
    "Disk",
    "Persistence",
    "Reservation",
    "ReservationType",
    "ResourceError",
    "ResourceKey",
    "Resources",
    "ValueKind",
    "Volume",
    "VolumeMode",
    "attributes_to_dict",
    "detect_resources",
    "leave_for_system",
    "parse_attributes",
    "ranges",
    "scalar",
    "set_items",
]

UNRESERVED = "*"
"""The role of unreserved resources (Mesos' `*`)."""

_MILLI = 1000
_UINT64_MAX = 2**64 - 1
_MIB = 1024 * 1024
# Characters that would break the text syntax if they appeared in a name, role or set item.
_SYNTAX_CHARS = frozenset("()[]{}:;,\"'")
_BRACKETS = re.compile(r"[\[\]{}]")
# Mesos attribute text: [a-zA-Z0-9_/.-]
_ATTRIBUTE_TEXT_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/.-"
)
# Display order of the well-known resources; the rest follow by name.
_FIRST_NAMES = {"cpus": 0, "gpus": 1, "mem": 2, "disk": 3, "ports": 4}


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


# ------------------------------------------------------------------ validation pieces


def _check_name(name: str) -> None:
    if not name:
        raise _Invalid("empty name")
    _check_chars(name, "name")


def _check_chars(word: str, what: str) -> None:
    for char in word:
        if char in _SYNTAX_CHARS or char.isspace() or not char.isprintable():
            raise _Invalid(f"{what} {word!r} contains {char!r}")


def _check_role(role: str) -> None:
    """Mesos role rules, plus no characters of the resource text syntax."""
    if not role:
        raise _Invalid("empty role")
    if role == UNRESERVED:
        return
    _check_chars(role, "role")
    if role.startswith("-"):
        raise _Invalid(f"role {role!r} starts with '-'")
    if role.startswith("/") or role.endswith("/"):
        raise _Invalid(f"role {role!r} starts or ends with '/'")
    for part in role.split("/"):
        if part in ("", ".", "..", UNRESERVED):
            raise _Invalid(f"role {role!r} has an invalid path component {part!r}")


def _parse_bound(text: str, span: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _Invalid(f"{text!r} in {span!r} is not a non-negative integer")
    bound = int(text)
    if bound > _UINT64_MAX:
        raise _Invalid(f"{bound} in {span!r} does not fit in 64 bits")
    return bound


def _check_span(begin: int, end: int) -> None:
    if begin > end:
        raise _Invalid(f"begin {begin} is past end {end}")


def _parse_spans(raw: str) -> _Spans:
    """`[b-e,b-e,...]` (brackets included) into coalesced spans; raises labelled `_Invalid`."""
    try:
        inner = raw[1:-1]
        if _BRACKETS.search(inner):
            raise _Invalid("unbalanced brackets")
        if not inner.strip():
            return ()
        spans: list[_Span] = []
        for item in inner.split(","):
            item = item.strip()
            if not item:
                raise _Invalid("empty range")
            begin_text, dash, end_text = item.partition("-")
            if not dash:
                raise _Invalid(f"range {item!r} is not 'begin-end'")
            begin = _parse_bound(begin_text.strip(), item)
            end = _parse_bound(end_text.strip(), item)
            _check_span(begin, end)
            spans.append((begin, end))
        return _coalesce(spans)
    except _Invalid as invalid:
        raise _Invalid(invalid.reason, "ranges", raw) from None


def _check_item(item: str) -> None:
    if not item:
        raise _Invalid("empty item")
    if item != item.strip():
        raise _Invalid(f"item {item!r} has surrounding whitespace")
    for char in item:
        if char in _SYNTAX_CHARS or not char.isprintable():
            raise _Invalid(f"item {item!r} contains {char!r}")


def _unique_items(items: Iterable[str]) -> frozenset[str]:
    seen: set[str] = set()
    for item in items:
        _check_item(item)
        if item in seen:
            raise _Invalid(f"duplicate item {item!r}")
        seen.add(item)
    return frozenset(seen)


def _parse_items(raw: str) -> frozenset[str]:
    """`{a,b,c}` (braces included) into a frozenset; raises labelled `_Invalid`."""
    try:
        inner = raw[1:-1]
        if _BRACKETS.search(inner):
            raise _Invalid("unbalanced brackets")
        if not inner.strip():
            return frozenset()
        return _unique_items(item.strip() for item in inner.split(","))
    except _Invalid as invalid:
        raise _Invalid(invalid.reason, "set", raw) from None


def _check_scalar(number: float, shown: object) -> int:
    """Milli-units of a scalar; `shown` is how errors name it (the text, or the number)."""
    if number < 0:
        raise _Invalid(f"{shown!r} is negative")
    if not math.isfinite(number):
        raise _Invalid(f"{shown!r} is not a finite number")
    return _to_milli(number)


def _parse_value(raw: str) -> tuple[ValueKind, _Value]:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise _Invalid("unbalanced '['", "ranges", raw)
        return ValueKind.RANGES, _parse_spans(raw)
    if raw.startswith("{"):
        if not raw.endswith("}"):
            raise _Invalid("unbalanced '{'", "set", raw)
        return ValueKind.SET, _parse_items(raw)
    if raw.endswith("]") or raw.endswith("}"):
        raise _Invalid(f"unbalanced {raw[-1]!r} in {raw!r}")
    if not raw:
        raise _Invalid("missing value")
    try:
        number = float(raw)
    except ValueError:
        raise _Invalid(f"{raw!r} is not a number") from None
    return ValueKind.SCALAR, _check_scalar(number, raw)


@functools.lru_cache(maxsize=4096)
def _head_key(head: str, kind: ValueKind, default_role: str) -> ResourceKey:
    """The key of `name` or `name(role)` (cached: agents repeat the same few heads)."""
    if "(" in head or ")" in head:
        opening = head.find("(")
        if opening < 0 or head.count("(") != 1 or head.count(")") != 1 or not head.endswith(")"):
            raise _Invalid(f"unbalanced parentheses in {head!r}")
        name = head[:opening].strip()
        role = head[opening + 1 : -1].strip()
    else:
        name = head
        role = default_role
    _check_name(name)
    _check_role(role)
    return _simple_key(name, kind, role)


def _parse_entry(token: str, default_role: str) -> tuple[ResourceKey, _Value]:
    """One `name(role):value` token; raises `_Invalid`."""
    head, colon, raw = token.partition(":")
    if not colon:
        raise _Invalid("expected 'name:value' or 'name(role):value'")
    kind, value = _parse_value(raw.strip())
    return _head_key(head.strip(), kind, default_role), value


# ------------------------------------------------------------------ protobuf


def _describe(resource: corral_pb2.Resource) -> str:
    return json.dumps(json_format.MessageToDict(resource), sort_keys=True)


def _entry_from_proto(resource: corral_pb2.Resource) -> tuple[ResourceKey, _Value]:
    """Validate one `corral.Resource`; raises `_Invalid`."""
    name = resource.name
    _check_name(name)
    if not resource.HasField("type"):
        raise _Invalid("missing type")
    kind = ValueKind(resource.type)
    present = [field for field in ("scalar", "ranges", "set") if resource.HasField(field)]
    expected = {ValueKind.SCALAR: "scalar", ValueKind.RANGES: "ranges", ValueKind.SET: "set"}
    if kind not in expected:
        raise _Invalid(f"type {kind.name} is not allowed for a resource")
    if expected[kind] not in present:
        raise _Invalid(f"type {kind.name} but no {expected[kind]!r} value")
    if len(present) > 1:
        others = [field for field in present if field != expected[kind]]
        raise _Invalid(f"type {kind.name} but also a {others[0]!r} value")
    value: _Value
    if kind is ValueKind.SCALAR:
        value = _check_scalar(resource.scalar.value, resource.scalar.value)
    elif kind is ValueKind.RANGES:
        spans = [(span.begin, span.end) for span in resource.ranges.range]
        try:
            for begin, end in spans:
                _check_span(begin, end)
        except _Invalid as invalid:
            raise _Invalid(invalid.reason, "ranges", _spans_text(spans)) from None
        value = _coalesce(spans)
    else:
        try:
            value = _unique_items(resource.set.item)
        except _Invalid as invalid:
            raise _Invalid(invalid.reason, "set", _items_text(resource.set.item)) from None

    reservations = tuple(
        Reservation(ReservationType(info.type), info.role, info.principal)
        for info in resource.reservations
    )
    for reservation in reservations:
        _check_role(reservation.role)
        if reservation.role == UNRESERVED:
            raise _Invalid(f"a reservation cannot be to role {UNRESERVED!r}")
    role_field = resource.role if resource.HasField("role") else UNRESERVED
    if role_field:
        _check_role(role_field)
    else:
        role_field = UNRESERVED
    if reservations:
        role = reservations[-1].role
        if role_field not in (UNRESERVED, role):
            raise _Invalid(f"role {role_field!r} is not the reservation's role {role!r}")
    else:
        role = role_field

    disk = _disk_from_proto(resource, name, kind, role)
    simple = _simple_key(name, kind, role)
    if disk is None and (not reservations or reservations == simple.reservations):
        return simple, value
    if not reservations and role != UNRESERVED:
        reservations = (Reservation(ReservationType.STATIC, role),)
    return ResourceKey(name, kind, role, reservations, disk), value


def _disk_from_proto(
    resource: corral_pb2.Resource, name: str, kind: ValueKind, role: str
) -> Disk | None:
    if not resource.HasField("disk"):
        return None
    info = resource.disk
    persistence = None
    volume = None
    if info.HasField("persistence"):
        if not info.persistence.id:
            raise _Invalid("persistent volume with an empty id")
        persistence = Persistence(info.persistence.id, info.persistence.principal)
    if info.HasField("volume"):
        if not info.volume.container_path:
            raise _Invalid("volume with an empty container_path")
        volume = Volume(
            info.volume.container_path, info.volume.host_path, VolumeMode(info.volume.mode)
        )
    if persistence is None and volume is None:
        return None
    if name != "disk" or kind is not ValueKind.SCALAR:
        raise _Invalid(f"disk info on {name!r}: only the 'disk' scalar carries it")
    if persistence is not None and role == UNRESERVED:
        raise _Invalid(f"persistent volume {persistence.id!r} is not on reserved disk")
    return Disk(persistence, volume)


def _proto_from_entry(key: ResourceKey, value: _Value) -> corral_pb2.Resource:
    resource = corral_pb2.Resource(name=key.name, type=int(key.kind))
    if type(value) is int:
        resource.scalar.value = value / _MILLI
    elif type(value) is tuple:
        for begin, end in value:
            resource.ranges.range.add(begin=begin, end=end)
    else:
        resource.set.item.extend(sorted(value))  # type: ignore[arg-type]
    if key.role != UNRESERVED:
        resource.role = key.role
    if not _is_simple(key):
        for reservation in key.reservations:
            info = resource.reservations.add(type=int(reservation.type), role=reservation.role)
            if reservation.principal:
                info.principal = reservation.principal
    if key.disk is not None:
        persistence, volume = key.disk
        if persistence is not None:
            resource.disk.persistence.id = persistence.id
            if persistence.principal:
                resource.disk.persistence.principal = persistence.principal
        if volume is not None:
            resource.disk.volume.container_path = volume.container_path
            if volume.host_path:
                resource.disk.volume.host_path = volume.host_path
            resource.disk.volume.mode = int(volume.mode)
    return resource


def _sort_key(key: ResourceKey) -> tuple[int, str, int, bool, str, str, str]:
    return (
        _FIRST_NAMES.get(key.name, len(_FIRST_NAMES)),
        key.name,
        int(key.kind),
        key.role != UNRESERVED,
        key.role,
        repr(key.reservations),
        repr(key.disk),
    )


@functools.lru_cache(maxsize=4096)
def _entry_from_bytes(data: bytes) -> tuple[ResourceKey, _Value]:
    """`_entry_from_proto` of a serialised `corral.Resource`, cached: tasks and agents
    carry the same few resources over and over, and checking one costs about ten times
    what serialising it does. (Keys and values are immutable, so entries are shared.)"""
    return _entry_from_proto(corral_pb2.Resource.FromString(data))


def _items_from_protos(resources: Iterable[corral_pb2.Resource]) -> _Items:
    items: _Items = {}
    for resource in resources:
        try:
            key, value = _entry_from_bytes(resource.SerializePartialToString())
        except _Invalid as invalid:
            raise ResourceError(
                f"invalid resource {_describe(resource)}: {invalid.detail()}"
            ) from None
        if value:
            _merge(items, key, value)
    return items


# ------------------------------------------------------------------ Resources


class Resources:
    """An immutable multiset of resources; see the module docstring for its invariants.

    Build one with `Resources.parse`, `Resources.from_protos` or arithmetic on others;
    `Resources()` is empty.
    """

    #: `_view`: `to_dict`'s answer, made at its first call (the master's /state asks it of
    #: every task's resources)
    __slots__ = ("_items", "_view")
    _items: _Items

    def __init__(self) -> None:
        object.__setattr__(self, "_items", {})

    @classmethod
    def _wrap(cls, items: _Items) -> Resources:
        made = object.__new__(cls)
        object.__setattr__(made, "_items", items)
        return made

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Resources is immutable")

    # -- construction

    @classmethod
    def parse(cls, text: str, default_role: str = UNRESERVED) -> Resources:
        """Parse Mesos resource text, or JSON when `text` starts with `[`.

        Text: `name(role):value;name:value` where value is a scalar (`4`, `0.5`), ranges
        (`[31000-32000,33000-33100]`) or a set (`{a,b,c}`); whitespace is tolerated, empty
        entries are skipped, and repeated names add up. `default_role` is the role of
        entries that name none (Mesos' `--default_role`).

        JSON: a list of `corral.Resource` objects in the protobuf JSON mapping, e.g.
        `[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "role": "r"}]`;
        `default_role` applies to objects without `role` or `reservations`.
        """
        try:
            _check_role(default_role)
        except _Invalid as invalid:
            raise ResourceError(
                f"invalid default role {default_role!r}: {invalid.reason}"
            ) from None
        stripped = text.strip()
        if stripped.startswith("["):
            return cls._parse_json(stripped, default_role)
        items: _Items = {}
        for token in text.split(";"):
            token = token.strip()
            if not token:
                continue
            try:
                key, value = _parse_entry(token, default_role)
            except _Invalid as invalid:
                if invalid.label:
                    raise _error(
                        invalid.label, invalid.part, (token, text), invalid.reason
                    ) from None
                raise _error("invalid resource", token, (text,), invalid.reason) from None
            if value:
                _merge(items, key, value)
        return cls._wrap(items)

    @classmethod
    def _parse_json(cls, text: str, default_role: str) -> Resources:
        try:
            elements = json.loads(text)
        except json.JSONDecodeError as err:
            raise ResourceError(f"invalid JSON resources: {err}") from None
        if not isinstance(elements, list):
            raise ResourceError(f"JSON resources must be a list, not {type(elements).__name__}")
        protos: list[corral_pb2.Resource] = []
        for index, element in enumerate(elements):
            if not isinstance(element, dict):
                raise ResourceError(
                    f"invalid resource at index {index} of JSON resources: "
                    f"expected an object, not {json.dumps(element)}"
                )
            resource = corral_pb2.Resource()
            try:
                json_format.ParseDict(element, resource)
            except json_format.ParseError as err:
                raise ResourceError(
                    f"invalid resource at index {index} of JSON resources "
                    f"{json.dumps(element, sort_keys=True)}: {str(err).splitlines()[0]}"
                ) from None
            if not resource.HasField("role") and not resource.reservations:
                if default_role != UNRESERVED:
                    resource.role = default_role
            protos.append(resource)
        return cls._wrap(_items_from_protos(protos))

    @classmethod
    def from_protos(cls, resources: Iterable[corral_pb2.Resource]) -> Resources:
        """Validate and collect `corral.Resource` messages; equal keys add up."""
        return cls._wrap(_items_from_protos(resources))

    # -- conversion

    def _sorted_keys(self) -> list[ResourceKey]:
        return sorted(self._items, key=_sort_key)

    def to_protos(self) -> list[corral_pb2.Resource]:
        """One fresh `corral.Resource` per entry, in a deterministic order."""
        return [_proto_from_entry(key, self._items[key]) for key in self._sorted_keys()]

    def to_text(self) -> str:
        """Text that `Resources.parse` turns back into an equal value.

        Mesos text syntax when every entry is unreserved or statically reserved without
        disk info; otherwise (dynamic reservations, principals, volumes), the JSON form.
        """
        keys = self._sorted_keys()
        if all(_is_simple(key) for key in keys):
            return ";".join(f"{_key_text(key)}:{_value_text(self._items[key])}" for key in keys)
        return json.dumps(
            [json_format.MessageToDict(resource) for resource in self.to_protos()],
            separators=(",", ":"),
        )

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__

    # -- arithmetic

    def __add__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        if not other._items:
            return self
        if not self._items:
            return other
        items = self._items.copy()
        for key, value in other._items.items():  # `_merge`, inlined: the allocator's hot path
            mine = items.get(key)
            if mine is None:
                items[key] = value
            elif type(value) is int:
                if key.disk is not None and key.disk.persistence is not None:
                    raise ResourceError(f"persistent volume {_volume_id(key)!r} is added twice")
                items[key] = mine + value  # type: ignore[operator]
            elif type(value) is tuple:
                items[key] = _spans_union(mine, value)  # type: ignore[arg-type]
            else:
                items[key] = mine | value  # type: ignore[operator]
        return Resources._wrap(items)

    def __sub__(self, other: Resources) -> Resources:
        """`self` without `other`; raises `ResourceError` unless `self` contains `other`."""
        if not isinstance(other, Resources):
            return NotImplemented
        if not other._items:
            return self
        items = self._items.copy()
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None:
                raise self._shortfall(other)
            if type(value) is int:
                if mine < value or (mine != value and _is_persistent(key)):  # type: ignore[operator]
                    raise self._shortfall(other)
                left: _Value = mine - value  # type: ignore[operator]
            elif type(value) is tuple:
                if not _spans_contain(mine, value):  # type: ignore[arg-type]
                    raise self._shortfall(other)
                left = _spans_subtract(mine, value)  # type: ignore[arg-type]
            else:
                if not value <= mine:  # type: ignore[operator]
                    raise self._shortfall(other)
                left = mine - value  # type: ignore[operator]
            if left:
                items[key] = left
            else:
                del items[key]
        return Resources._wrap(items)

    def _shortfall(self, other: Resources) -> ResourceError:
        """The error for `self - other` when `self` does not contain `other`: what lacks."""
        missing: list[str] = []
        for key in other._sorted_keys():
            value = other._items[key]
            mine = self._items.get(key)
            where = _key_text(key) if _is_simple(key) else _describe(_proto_from_entry(key, value))
            if mine is None:
                missing.append(f"{where}: has none, needs {_value_text(value)}")
            elif type(value) is int:
                if mine < value:  # type: ignore[operator]
                    missing.append(f"{where}: has {_milli_text(mine)}, needs {_milli_text(value)}")  # type: ignore[arg-type]
                elif mine != value and _is_persistent(key):
                    missing.append(f"{where}: a persistent volume is only subtracted whole")
            elif type(value) is tuple:
                lacking = _spans_subtract(value, mine)  # type: ignore[arg-type]
                if lacking:
                    missing.append(f"{where}: lacks {_spans_text(lacking)}")
            else:
                lacking_items: frozenset[str] = value - mine  # type: ignore[operator,assignment]
                if lacking_items:
                    missing.append(f"{where}: lacks {_items_text(sorted(lacking_items))}")
        return ResourceError(
            f"cannot subtract {other.to_text()!r} from {self.to_text()!r}: " + "; ".join(missing)
        )

    def contains(self, other: Resources) -> bool:
        """Whether `other` fits in `self` key by key (roles and reservations must match)."""
        items = self._items
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None:
                return False
            if type(value) is int:
                if mine < value or (mine != value and _is_persistent(key)):  # type: ignore[operator]
                    return False
            elif type(value) is tuple:
                if not _spans_contain(mine, value):  # type: ignore[arg-type]
                    return False
            elif not value <= mine:  # type: ignore[operator]
                return False
        return True

    def __le__(self, other: Resources) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return other.contains(self)

    def __ge__(self, other: Resources) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self.contains(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self._items)

    # -- role views

    def flatten(self, role: str = UNRESERVED) -> Resources:
        """The same quantities, all under `role` (static if not `*`): reservations and
        disk info (volumes) are dropped, so volumes count as plain disk."""
        try:
            _check_role(role)
        except _Invalid as invalid:
            raise ResourceError(f"cannot flatten to role {role!r}: {invalid.reason}") from None
        items: _Items = {}
        for key, value in self._items.items():
            _merge(items, _simple_key(key.name, key.kind, role), value)
        return Resources._wrap(items)

    def reserved(self, role: str | None = None) -> Resources:
        """Reserved resources: to any role, or (given `role`) to exactly that role."""
        return Resources._wrap(
            {
                key: value
                for key, value in self._items.items()
                if key.role != UNRESERVED and (role is None or key.role == role)
            }
        )

    def unreserved(self) -> Resources:
        """Resources reserved to no role."""
        return Resources._wrap(
            {key: value for key, value in self._items.items() if key.role == UNRESERVED}
        )

    def filter_role(self, role: str) -> Resources:
        """What a framework in `role` may use: unreserved resources and those reserved to
        `role` or to one of its ancestors (`a` for `a/b`, hierarchical roles as in Mesos)."""
        return Resources._wrap(
            {
                key: value
                for key, value in self._items.items()
                if key.role == UNRESERVED or key.role == role or role.startswith(key.role + "/")
            }
        )

    # -- quantities

    def scalar(self, name: str) -> float:
        """The total of scalar resource `name` over all roles (0.0 when absent)."""
        total = 0
        for key, value in self._items.items():
            if key.name == name and type(value) is int:
                total += value
        return total / _MILLI

    @property
    def cpus(self) -> float:
        return self.scalar("cpus")

    @property
    def mem(self) -> float:
        """Memory in MB."""
        return self.scalar("mem")

    @property
    def disk(self) -> float:
        """Disk in MB."""
        return self.scalar("disk")

    @property
    def ports(self) -> list[tuple[int, int]]:
        """All `ports` ranges over all roles, merged: `[(begin, end), ...]`."""
        spans: list[_Span] = []
        for key, value in self._items.items():
            if key.name == "ports" and type(value) is tuple:
                spans.extend(value)
        return list(_coalesce(spans))

    def to_dict(self) -> dict[str, object]:
        """The JSON view Mesos' `/state` gives, summed over roles: scalars as numbers, ranges
        and sets in their text form, e.g. `{"cpus": 4.0, "ports": "[31000-32000]"}`."""
        try:
            view = self._view
        except AttributeError:
            view = self._make_view()
            object.__setattr__(self, "_view", view)
        return dict(view)

    def _make_view(self) -> dict[str, object]:
        merged: dict[tuple[int, str, int], _Value] = {}  # by (sort rank, name, kind)
        for key, value in self._items.items():
            name = key.name
            slot = (_FIRST_NAMES.get(name, len(_FIRST_NAMES)), name, int(key.kind))
            mine = merged.get(slot)
            if mine is None:
                merged[slot] = value
            elif type(value) is int:
                merged[slot] = mine + value  # type: ignore[operator]
            elif type(value) is tuple:
                merged[slot] = _spans_union(mine, value)  # type: ignore[arg-type]
            else:
                merged[slot] = mine | value  # type: ignore[operator]
        return {
            slot[1]: value / _MILLI if type(value) is int else _value_text(value)
            for slot, value in sorted(merged.items())
        }

    def names(self) -> frozenset[str]:
        """The names of the resources held."""
        return frozenset(key.name for key in self._items)

    # -- limits (the allocator's quota)

    def cap_scalars(self, limits: dict[str, float]) -> Resources:
        """These resources with the total of each scalar named in `limits` cut to at most
        that amount (a negative limit counts as 0). Unreserved entries are cut before
        reserved ones; a persistent volume is indivisible, so it is dropped whole (cut
        last). Resources not named in `limits`, ranges and sets are kept as they are."""
        items = self._items.copy()
        for name, limit in limits.items():
            keys = [key for key in items if key.name == name and key.kind is ValueKind.SCALAR]
            excess = sum(items[key] for key in keys) - _to_milli(max(limit, 0.0))  # type: ignore[misc]
            if excess <= 0:
                continue
            keys.sort(key=lambda key: (_is_persistent(key), key.role != UNRESERVED, _sort_key(key)))
            for key in keys:
                value: int = items[key]  # type: ignore[assignment]
                if value <= excess or _is_persistent(key):
                    del items[key]
                    excess -= value
                else:
                    items[key] = value - excess
                    excess = 0
                if excess <= 0:
                    break
        return Resources._wrap(items)


# ------------------------------------------------------------------ builders


def _built(resource: corral_pb2.Resource) -> corral_pb2.Resource:
    """Validate a freshly built proto and return it normalised (ranges merged, items sorted)."""
    try:
        key, value = _entry_from_proto(resource)
    except _Invalid as invalid:
        raise ResourceError(f"invalid resource {_describe(resource)}: {invalid.detail()}") from None
    return _proto_from_entry(key, value)


def scalar(name: str, value: float, role: str | None = None) -> corral_pb2.Resource:
    """A scalar `corral.Resource` (rounded to 0.001), e.g. `scalar("cpus", 0.5, "web")`."""
    resource = corral_pb2.Resource(name=name, type=corral_pb2.Value.SCALAR)
    resource.scalar.value = value
    if role is not None:
        resource.role = role
    return _built(resource)


def ranges(
    name: str, spans: Iterable[tuple[int, int]], role: str | None = None
) -> corral_pb2.Resource:
    """A ranges `corral.Resource`, e.g. `ranges("ports", [(31000, 32000)])` (merged)."""
    resource = corral_pb2.Resource(name=name, type=corral_pb2.Value.RANGES)
    resource.ranges.SetInParent()
    for begin, end in spans:
        if begin < 0 or end < 0 or begin > _UINT64_MAX or end > _UINT64_MAX:
            raise ResourceError(
                f"invalid resource {name!r}: range {begin}-{end} is not within 0..2^64-1"
            )
        resource.ranges.range.add(begin=begin, end=end)
    if role is not None:
        resource.role = role
    return _built(resource)


def set_items(name: str, items: Iterable[str], role: str | None = None) -> corral_pb2.Resource:
    """A set `corral.Resource`, e.g. `set_items("gpus", ["gpu0", "gpu1"])` (items sorted)."""
    resource = corral_pb2.Resource(name=name, type=corral_pb2.Value.SET)
    resource.set.SetInParent()
    resource.set.item.extend(items)
    if role is not None:
        resource.role = role
    return _built(resource)


# ------------------------------------------------------------------ attributes


def _check_attribute_text(text: str) -> None:
    for char in text:
        if char not in _ATTRIBUTE_TEXT_CHARS:
            raise _Invalid(f"{char!r} in {text!r} is not a letter, digit or one of '_/.-'")


def _parse_attribute(token: str) -> corral_pb2.Attribute:
    name, colon, raw = token.partition(":")
    if not colon:
        raise _Invalid("expected 'name:value'")
    name = name.strip()
    raw = raw.strip()
    if not name:
        raise _Invalid("empty name")
    _check_attribute_text(name)
    if not raw:
        raise _Invalid("missing value")
    attribute = corral_pb2.Attribute(name=name)
    if raw.startswith("[") or raw.startswith("{") or raw.endswith("]") or raw.endswith("}"):
        kind, value = _parse_value(raw)
        attribute.type = int(kind)
        if type(value) is tuple:
            attribute.ranges.SetInParent()
            for begin, end in value:
                attribute.ranges.range.add(begin=begin, end=end)
        else:
            attribute.set.SetInParent()
            attribute.set.item.extend(sorted(value))  # type: ignore[arg-type]
        return attribute
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if math.isfinite(number):
        attribute.type = corral_pb2.Value.SCALAR
        attribute.scalar.value = number
    else:
        _check_attribute_text(raw)
        attribute.type = corral_pb2.Value.TEXT
        attribute.text.value = raw
    return attribute


def parse_attributes(text: str) -> list[corral_pb2.Attribute]:
    """Parse Mesos agent attributes: `rack:r1;level:3.5;ids:[1-5];tags:{a,b}`.

    A value is ranges (`[..]`), a set (`{..}`), a scalar when it is a finite number, and
    text otherwise (letters, digits and `_/.-`, as in Mesos). Order is kept; names may repeat.
    """
    attributes: list[corral_pb2.Attribute] = []
    for token in text.split(";"):
        token = token.strip()
        if not token:
            continue
        try:
            attributes.append(_parse_attribute(token))
        except _Invalid as invalid:
            if invalid.label:
                raise _error(invalid.label, invalid.part, (token, text), invalid.reason) from None
            raise _error("invalid attribute", token, (text,), invalid.reason) from None
    return attributes


def attributes_to_dict(attributes: Iterable[corral_pb2.Attribute]) -> dict[str, object]:
    """The JSON view Mesos' `/state` gives: scalars as numbers, text as strings, ranges and
    sets in their text form (`"[1-5]"`, `"{a,b}"`). A repeated name keeps its last value."""
    view: dict[str, object] = {}
    for attribute in attributes:
        kind = ValueKind(attribute.type)
        if kind is ValueKind.SCALAR:
            view[attribute.name] = attribute.scalar.value
        elif kind is ValueKind.RANGES:
            view[attribute.name] = _spans_text(
                (span.begin, span.end) for span in attribute.ranges.range
            )
        elif kind is ValueKind.SET:
            view[attribute.name] = _items_text(attribute.set.item)
        else:
            view[attribute.name] = attribute.text.value
    return view


# ------------------------------------------------------------------ this machine


DEFAULT_PORTS: tuple[int, int] = (31000, 32000)
"""The ports an agent offers by default (Mesos: `[31000-32000]`)."""
MEM_KEEP_MB = 1024
"""Memory left to the system: at most 1 GB (Mesos)."""
DISK_KEEP_MB = 5 * 1024
"""Disk left to the system: at most 5 GB (Mesos)."""


def leave_for_system(total_mb: int, keep_mb: int) -> int:
    """What an agent offers out of `total_mb`: it leaves `min(keep_mb, total_mb / 2)`.

    This is Mesos' rule: with at least twice `keep_mb`, offer all but `keep_mb`;
    otherwise offer half.
    """
    return total_mb - min(keep_mb, total_mb // 2)


def _total_memory_mb() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024  # kB
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // _MIB


def detect_resources(work_dir: str) -> Resources:
    """What this machine offers when the operator names no resources (Mesos' defaults).

    - cpus: `os.cpu_count()`.
    - mem (MB): total memory (`/proc/meminfo` MemTotal) minus `min(1 GB, total / 2)`.
    - disk (MB): free space of the filesystem holding `work_dir` minus
      `min(5 GB, free / 2)`. (Mesos measures the filesystem's size; corral measures what
      is free, so an agent never offers space other data already uses.)
    - ports: `[31000-32000]`.

    Raises `ResourceError` when `work_dir` cannot be measured (e.g. it does not exist).
    """
    try:
        free_mb = shutil.disk_usage(work_dir).free // _MIB
    except OSError as err:
        raise ResourceError(
            f"cannot measure free disk under work dir {work_dir!r}: {err.strerror}"
        ) from None
    items: _Items = {}
    quantities = (
        ("cpus", (os.cpu_count() or 1) * _MILLI),
        ("mem", leave_for_system(_total_memory_mb(), MEM_KEEP_MB) * _MILLI),
        ("disk", leave_for_system(free_mb, DISK_KEEP_MB) * _MILLI),
    )
    for name, milli in quantities:
        if milli:
            items[_simple_key(name, ValueKind.SCALAR, UNRESERVED)] = milli
    items[_simple_key("ports", ValueKind.RANGES, UNRESERVED)] = (DEFAULT_PORTS,)
    return Resources._wrap(items)
