"""The status path's message classes: updates and acks as Python rows in memory,
protobuf on the wire.

Six message types carry every status update and ack (see corral.proto, where their
schemas live: StatusColumns and the three acks). They are hot, so they do not go
through generated protobuf classes: `corral._core`'s codec turns their wire bytes into
lists of row tuples and back, with exactly protobuf's bytes. Each class has what the
runtimes and the simulator use of a protobuf message: `FromString` (raising
DecodeError on malformed bytes) and `SerializeToString`.

An update row is a tuple (framework_id, executor_id, task_id, state, uuid, status,
health, latest_state): `status` the serialised TaskStatus (what the scheduler's
callback gets), `uuid` b"" on the master's own updates, `health` one of
HEALTH_UNREPORTED, HEALTHY, UNHEALTHY, and `latest_state` the newest state the sender
knows for the task (agent -> master; elsewhere the update's own state).
"""
from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from corral import _core

HEALTH_UNREPORTED, HEALTHY, UNHEALTHY = 0, 1, 2


class UpdateMessage:
    """Base of the three update messages: `rows`, update rows in order. The three have
    the same schema (one StatusColumns), so a message can be relayed as another with
    the bytes it arrived in (`relay`): a decoded message keeps them, and its rows are
    not to be changed."""

    __slots__ = ("rows", "_wire")

    def __init__(self, rows: list[Any] | None = None) -> None:
        self.rows: list[Any] = [] if rows is None else rows
        self._wire: bytes | None = None

    @classmethod
    def FromString(cls, data: bytes) -> Any:  # noqa: N802 (protobuf's name)
        msg = cls.__new__(cls)
        try:
            msg.rows = _core.decode_updates(data)
        except _core.ColumnsError as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from None
        msg._wire = data
        return msg

    @classmethod
    def relay(cls, msg: UpdateMessage) -> Any:
        """`msg`'s rows as a message of this class, sent as the bytes `msg` came in
        when it was decoded (no encoding)."""
        out = cls.__new__(cls)
        out.rows = msg.rows
        out._wire = msg._wire
        return out

    def SerializeToString(self) -> bytes:  # noqa: N802
        if self._wire is not None:
            return self._wire
        return _core.encode_updates(self.rows)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.rows == self.rows  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.rows)} updates)"


class ExecutorStatusUpdate(UpdateMessage):
    """Executor driver -> agent."""


class StatusUpdateMessage(UpdateMessage):
    """Agent -> master."""


class Updates(UpdateMessage):
    """Master -> scheduler: relayed updates and the master's own."""


class AckMessage:
    """Base of the three ack messages: the ids every row shares (`_shared`: field 1 and,
    for an ExecutorStatusUpdateAck, field 2) and `rows`."""

    __slots__ = ("rows",)
    rows: list[Any]
    #: the fields of a row: 3 when field 2 is a column, 2 when it is shared
    WIDTH = 3

    def _shared(self) -> tuple[str, str | None]:
        raise NotImplementedError

    @classmethod
    def FromString(cls, data: bytes) -> Any:  # noqa: N802
        try:
            first, second, rows = _core.decode_acks(data, cls.WIDTH)
        except _core.ColumnsError as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from None
        return cls(first, rows) if second is None else cls(first, second, rows)  # type: ignore[call-arg]

    def SerializeToString(self) -> bytes:  # noqa: N802
        first, second = self._shared()
        return _core.encode_acks(first, second, self.rows)

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other._shared() == self._shared()  # type: ignore[attr-defined]
                and other.rows == self.rows)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        first, second = self._shared()
        ids = repr(first) if second is None else f"{first!r}, {second!r}"
        return f"{type(self).__name__}({ids}, {len(self.rows)} acks)"


class Acknowledge(AckMessage):
    """Scheduler -> master: `rows` of (agent_id, task_id, uuid)."""

    __slots__ = ("framework_id",)

    def __init__(self, framework_id: str, rows: list[Any] | None = None) -> None:
        self.framework_id = framework_id
        self.rows = [] if rows is None else rows

    def _shared(self) -> tuple[str, str | None]:
        return self.framework_id, None


class StatusUpdateAck(AckMessage):
    """Master -> agent: `rows` of (framework_id, task_id, uuid)."""

    __slots__ = ("agent_id",)

    def __init__(self, agent_id: str, rows: list[Any] | None = None) -> None:
        self.agent_id = agent_id
        self.rows = [] if rows is None else rows

    def _shared(self) -> tuple[str, str | None]:
        return self.agent_id, None


class ExecutorStatusUpdateAck(AckMessage):
    """Agent -> executor driver: `rows` of (task_id, uuid)."""

    __slots__ = ("agent_id", "framework_id")
    WIDTH = 2

    def __init__(self, agent_id: str, framework_id: str, rows: list[Any] | None = None) -> None:
        self.agent_id = agent_id
        self.framework_id = framework_id
        self.rows = [] if rows is None else rows

    def _shared(self) -> tuple[str, str | None]:
        return self.agent_id, self.framework_id
