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

UpdateRowTuple = tuple[str, str, str, int, bytes, bytes, int, int]

HEALTH_UNREPORTED, HEALTHY, UNHEALTHY = 0, 1, 2


class _Updates:
    """Base of the three update messages: `rows`, update rows in order."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Any] | None = None) -> None:
        self.rows: list[Any] = [] if rows is None else rows

    @classmethod
    def FromString(cls, data: bytes) -> Any:  # noqa: N802 (protobuf's name)
        msg = cls.__new__(cls)
        try:
            msg.rows = _core.decode_updates(data)
        except _core.ColumnsError as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from None
        return msg

    def SerializeToString(self) -> bytes:  # noqa: N802
        return _core.encode_updates(self.rows)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.rows == self.rows  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.rows)} updates)"


class ExecutorStatusUpdate(_Updates):
    """Executor driver -> agent."""


class StatusUpdateMessage(_Updates):
    """Agent -> master."""


class Updates(_Updates):
    """Master -> scheduler: relayed updates and the master's own."""


class Acknowledge:
    """Scheduler -> master: `rows` of (agent_id, task_id, uuid)."""

    __slots__ = ("framework_id", "rows")

    def __init__(self, framework_id: str, rows: list[Any] | None = None) -> None:
        self.framework_id = framework_id
        self.rows: list[Any] = [] if rows is None else rows

    @classmethod
    def FromString(cls, data: bytes) -> Acknowledge:  # noqa: N802
        framework_id, _, rows = _decode_acks(cls, data, 3)
        return cls(framework_id, rows)

    def SerializeToString(self) -> bytes:  # noqa: N802
        return _core.encode_acks(self.framework_id, None, self.rows)

    def __eq__(self, other: object) -> bool:
        return (type(other) is Acknowledge and other.framework_id == self.framework_id  # type: ignore[attr-defined]
                and other.rows == self.rows)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"Acknowledge({self.framework_id!r}, {len(self.rows)} acks)"


class StatusUpdateAck:
    """Master -> agent: `rows` of (framework_id, task_id, uuid)."""

    __slots__ = ("agent_id", "rows")

    def __init__(self, agent_id: str, rows: list[Any] | None = None) -> None:
        self.agent_id = agent_id
        self.rows: list[Any] = [] if rows is None else rows

    @classmethod
    def FromString(cls, data: bytes) -> StatusUpdateAck:  # noqa: N802
        agent_id, _, rows = _decode_acks(cls, data, 3)
        return cls(agent_id, rows)

    def SerializeToString(self) -> bytes:  # noqa: N802
        return _core.encode_acks(self.agent_id, None, self.rows)

    def __eq__(self, other: object) -> bool:
        return (type(other) is StatusUpdateAck and other.agent_id == self.agent_id  # type: ignore[attr-defined]
                and other.rows == self.rows)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"StatusUpdateAck({self.agent_id!r}, {len(self.rows)} acks)"


class ExecutorStatusUpdateAck:
    """Agent -> executor driver: `rows` of (task_id, uuid)."""

    __slots__ = ("agent_id", "framework_id", "rows")

    def __init__(self, agent_id: str, framework_id: str, rows: list[Any] | None = None) -> None:
        self.agent_id = agent_id
        self.framework_id = framework_id
        self.rows: list[Any] = [] if rows is None else rows

    @classmethod
    def FromString(cls, data: bytes) -> ExecutorStatusUpdateAck:  # noqa: N802
        return cls(*_decode_acks(cls, data, 2))

    def SerializeToString(self) -> bytes:  # noqa: N802
        return _core.encode_acks(self.agent_id, self.framework_id, self.rows)

    def __eq__(self, other: object) -> bool:
        return (type(other) is ExecutorStatusUpdateAck and other.agent_id == self.agent_id  # type: ignore[attr-defined]
                and other.framework_id == self.framework_id and other.rows == self.rows)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"ExecutorStatusUpdateAck({self.agent_id!r}, {self.framework_id!r}, {len(self.rows)} acks)"


def _decode_acks(cls: type, data: bytes, width: int) -> tuple[Any, ...]:
    try:
        return _core.decode_acks(data, width)
    except _core.ColumnsError as exc:
        raise DecodeError(f"{cls.__name__}: {exc}") from None
