"""The status path's six message classes: updates and acks as rows in memory, protobuf's
exact bytes on the wire (through the `decoding` and `encoding` codec). `corral.net.wire` presents them to
the engines, with the row layout.

Each has what the runtimes and the simulator use of a generated protobuf class:
`FromString` (DecodeError, naming the class, for bytes that do not parse) and
`SerializeToString`. The compiled build makes them C types, so that building, parsing
and serialising a one-row message (every message, with batching off) costs no Python
call beyond the type's own.

One source for both builds: plain Python as is; compiled by Cython with messages.pxd.
"""
from __future__ import annotations

from google.protobuf.message import DecodeError  # the runtimes' one error for a body that does not parse

from .decoding import ColumnsError, decode_acks, decode_updates
from .encoding import encode_acks, encode_updates


class UpdateMessage:
    """Base of the three update messages: `rows`, update rows in order. The three have
    the same schema (one StatusColumns), so a message can be relayed as another with
    the bytes it arrived in (`relay`): a decoded message keeps them, and its rows are
    not to be changed."""

    __slots__ = ("rows", "_wire")

    def __init__(self, rows=None):
        self.rows = [] if rows is None else rows
        self._wire = None

    @classmethod
    def FromString(cls, data):  # noqa: N802 (protobuf's name)
        msg = cls.__new__(cls)
        try:
            msg.rows = decode_updates(data)
        except ColumnsError as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from None
        msg._wire = data
        return msg

    @classmethod
    def relay(cls, msg):
        """`msg`'s rows as a message of this class, sent as the bytes `msg` came in
        when it was decoded (no encoding)."""
        out = cls.__new__(cls)
        out.rows = msg.rows
        out._wire = msg._wire
        return out

    def SerializeToString(self):  # noqa: N802
        if self._wire is not None:
            return self._wire
        return encode_updates(self.rows)

    def __eq__(self, other):
        return type(other) is type(self) and other.rows == self.rows

    def __repr__(self):
        return f"{type(self).__name__}({len(self.rows)} updates)"


class ExecutorStatusUpdate(UpdateMessage):
    """Executor driver -> agent."""

    __slots__ = ()


class StatusUpdateMessage(UpdateMessage):
    """Agent -> master."""

    __slots__ = ()


class Updates(UpdateMessage):
    """Master -> scheduler: relayed updates and the master's own."""

    __slots__ = ()


class AckMessage:
    """Base of the three ack messages: `rows`, and the ids every row shares (`_shared`:
    field 1 and, for an ExecutorStatusUpdateAck, field 2)."""

    __slots__ = ("rows",)
    #: the fields of a row: 3 when field 2 is a column, 2 when it is shared
    WIDTH = 3

    def _shared(self):
        raise NotImplementedError

    @classmethod
    def FromString(cls, data):  # noqa: N802
        try:
            first, second, rows = decode_acks(data, cls.WIDTH)
        except ColumnsError as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from None
        return cls(first, rows) if second is None else cls(first, second, rows)

    def SerializeToString(self):  # noqa: N802
        shared = self._shared()
        return encode_acks(shared[0], shared[1], self.rows)

    def __eq__(self, other):
        return type(other) is type(self) and other._shared() == self._shared() and other.rows == self.rows

    def __repr__(self):
        first, second = self._shared()
        ids = repr(first) if second is None else f"{first!r}, {second!r}"
        return f"{type(self).__name__}({ids}, {len(self.rows)} acks)"


class Acknowledge(AckMessage):
    """Scheduler -> master: `rows` of (agent_id, task_id, uuid)."""

    __slots__ = ("framework_id",)

    def __init__(self, framework_id, rows=None):
        self.framework_id = framework_id
        self.rows = [] if rows is None else rows

    def _shared(self):
        return (self.framework_id, None)


class StatusUpdateAck(AckMessage):
    """Master -> agent: `rows` of (framework_id, task_id, uuid)."""

    __slots__ = ("agent_id",)

    def __init__(self, agent_id, rows=None):
        self.agent_id = agent_id
        self.rows = [] if rows is None else rows

    def _shared(self):
        return (self.agent_id, None)


class ExecutorStatusUpdateAck(AckMessage):
    """Agent -> executor driver: `rows` of (task_id, uuid)."""

    __slots__ = ("agent_id", "framework_id")
    WIDTH = 2

    def __init__(self, agent_id, framework_id, rows=None):
        self.agent_id = agent_id
        self.framework_id = framework_id
        self.rows = [] if rows is None else rows

    def _shared(self):
        return (self.agent_id, self.framework_id)
