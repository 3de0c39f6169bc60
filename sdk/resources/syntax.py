"""The text syntax of resources (`cpus(role):4;mem:1024;ports:[31000-32000];gpus:{a,b}`):
each entry checked and parsed into a key and a value."""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable

from corral.resources.values import (ResourceKey, UNRESERVED, ValueKind, _Invalid, _Span, _Spans, _UINT64_MAX, _Value,
                                     _coalesce, _simple_key, _to_milli)

# Characters that would break the text syntax if they appeared in a name, role or set item.
_SYNTAX_CHARS = frozenset("()[]{}:;,\"'")
_BRACKETS = re.compile(r"[\[\]{}]")


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
