"""Agent attributes (`rack:r1;level:3.5`): parsing into `corral.Attribute` protobufs,
and their JSON view."""
from __future__ import annotations

import math
from collections.abc import Iterable

from corral.protos import corral_pb2
from corral.resources.syntax import _parse_value
from corral.resources.values import ValueKind, _Invalid, _error, _items_text, _spans_text

# Mesos attribute text: [a-zA-Z0-9_/.-]
_ATTRIBUTE_TEXT_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/.-"
)


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
