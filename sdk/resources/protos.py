"""Resources as `corral.Resource` protobufs: each checked and turned into a key and a
value, and back, and builders for single protos (`scalar`, `ranges`, `set_items`)."""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable

from google.protobuf import json_format

from corral.protos import corral_pb2
from corral.resources.syntax import _check_name, _check_role, _check_scalar, _check_span, _unique_items
from corral.resources.values import (Disk, Persistence, Reservation, ReservationType, ResourceError, ResourceKey,
                                     UNRESERVED, ValueKind, Volume, VolumeMode, _Invalid, _Items, _MILLI, _UINT64_MAX,
                                     _Value, _coalesce, _is_simple, _items_text, _merge, _simple_key, _spans_text)

# Display order of the well-known resources; the rest follow by name.
_FIRST_NAMES = {"cpus": 0, "gpus": 1, "mem": 2, "disk": 3, "ports": 4}


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
