"""Hostile protobuf messages for the engines' bad-input tests: well framed, every field
drawn from pools of known and unknown ids, bad roles and resource names, odd numbers
(NaN, infinities, negatives), with required fields sometimes missing and repeated
fields repeated. Deterministic for a given `random.Random`."""
from __future__ import annotations

import math
import os
import random
from typing import Any, Callable

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError

from corral.net.protocol import BODY_CLASS, WIRE_TYPES, parse_message

_STRINGS = ["", "a1", "t1", "t2", "x", "*", "db", "bad role/", "..", "cpus", "mem", "disk", "ports", "v1",
            "tcp://agent1", "tcp://sched1", "\u00e9t\u00e9", "y" * 300]
_FLOATS = [0.0, -1.0, 0.001, 1.0, 3.5, 1e12, math.inf, -math.inf, math.nan]
_INTS = [0, 1, -1, 2, 7, 31000, 2**31 - 1, -2**31]


class Hostile:
    """Random protobuf messages whose ids come from the pools above plus the ids the
    cluster really uses (so that some messages reach deep into the handlers)."""

    def __init__(self, rng: random.Random, known_ids: list[str]) -> None:
        self.rng = rng
        self.strings = _STRINGS + known_ids

    def fill(self, msg, depth: int = 0) -> None:
        rng = self.rng
        for field in msg.DESCRIPTOR.fields:
            required = field.is_required
            if not required and rng.random() < 0.45:
                continue
            if required and rng.random() < 0.05:
                continue  # a required field missing: the runtimes drop such a message
            if field.is_repeated:
                for _ in range(rng.choice([1, 1, 2, 3])):
                    self._add(msg, field, depth)
            else:
                self._set(msg, field, depth)

    def _value(self, field):
        rng = self.rng
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return rng.choice(self.strings)
        if kind == FieldDescriptor.TYPE_BYTES:
            return rng.choice([b"", b"\x00" * 16, bytes(rng.randrange(256) for _ in range(16)), b"x" * 3])
        if kind == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice(_FLOATS)
        if kind == FieldDescriptor.TYPE_ENUM:
            return rng.choice([v.number for v in field.enum_type.values])
        if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
                    FieldDescriptor.TYPE_FIXED64):
            return abs(rng.choice(_INTS))
        return rng.choice(_INTS)

    def _set(self, msg, field, depth: int) -> None:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < 5:
                sub = getattr(msg, field.name)
                sub.SetInParent()
                self.fill(sub, depth + 1)
        else:
            setattr(msg, field.name, self._value(field))

    def _add(self, msg, field, depth: int) -> None:
        container = getattr(msg, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            key = self._value(key_field)
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < 5:
                    self.fill(container[key], depth + 1)
            else:
                container[key] = self._value(value_field)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < 5:
                self.fill(container.add(), depth + 1)
        else:
            container.append(self._value(field))

    def message(self, cls):
        """A hostile `cls`, as a runtime hands it to an engine (serialised without the
        required-field check and parsed back as runtimes parse), or None when a runtime
        would drop it as undecodable (a required field missing)."""
        msg = cls()
        self.fill(msg)
        try:
            return parse_message(cls, msg.SerializePartialToString())
        except DecodeError:
            return None


def protobuf_types(engine_cls) -> list[type]:
    """The protobuf message types `engine_cls` handles (the status path's row messages
    have their own codec, tested byte by byte in tests/core/test_columns.py)."""
    return [BODY_CLASS[t] for t in engine_cls.handled_types() if t.name not in WIRE_TYPES]


#: seeds per engine (CORRAL_HOSTILE_SEEDS for more) and messages per seed
SEEDS = range(int(os.environ.get("CORRAL_HOSTILE_SEEDS", "200")))
MESSAGES_PER_SEED = 60


def bombard(engine, seed: int, known_ids: list[str], senders: list[str], now: float,
            adjust: Callable[[Any], None] | None = None) -> float:
    """Hand `engine` MESSAGES_PER_SEED hostile messages of the types it handles, each
    from one of `senders` (`adjust` may tame a message first), ticking it and taking its
    actions after each; the time reached. A handler that raises fails the test, naming
    the seed and the message."""
    hostile = Hostile(random.Random(seed), known_ids)
    rng = hostile.rng
    types = protobuf_types(type(engine))
    for n in range(MESSAGES_PER_SEED):
        cls = rng.choice(types)
        body = hostile.message(cls)
        if body is None:
            continue
        if adjust is not None:
            adjust(body)
        sender = rng.choice(senders)
        try:
            engine.handle(sender, body, now)
            engine.tick(now)
            engine.take_actions()
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"seed {seed}, message {n}: {cls.__name__} from {sender} raised "
                                 f"{type(exc).__name__}: {exc}\n{body}") from exc
        now += rng.choice([0.01, 0.5, 2.0])
    return now
