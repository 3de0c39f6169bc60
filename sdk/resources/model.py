"""`Resources`: an immutable multiset of resources, with the arithmetic the allocator and
the engines need (see the package's docstring for its invariants)."""
from __future__ import annotations

import json
from collections.abc import Iterable

from google.protobuf import json_format

from corral.protos import corral_pb2
from corral.resources.protos import _FIRST_NAMES, _describe, _items_from_protos, _proto_from_entry, _sort_key
from corral.resources.syntax import _check_role, _parse_entry
from corral.resources.values import (ResourceError, ResourceKey, UNRESERVED, ValueKind, _Invalid, _Items, _MILLI,
                                     _Span, _Value, _coalesce, _error, _is_persistent, _is_simple, _items_text,
                                     _key_text, _merge, _milli_text, _simple_key, _spans_contain, _spans_subtract,
                                     _spans_text, _spans_union, _to_milli, _value_text, _volume_id)


class Resources:
    """An immutable multiset of resources; see the package docstring (corral.resources) for its invariants.

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
