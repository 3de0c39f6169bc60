"""The status path's message classes: updates and acks as Python rows in memory,
protobuf on the wire.

Six message types carry every status update and ack (see corral.proto, where their
schemas live: StatusColumns and the three acks). They are hot, so they do not go
through generated protobuf classes: `corral._core`'s codec turns their wire bytes into
lists of row tuples and back, with exactly protobuf's bytes; the classes themselves are
`corral._core.messages` (C types in the compiled build). Each has what the runtimes and
the simulator use of a protobuf message: `FromString` (raising DecodeError on malformed
bytes) and `SerializeToString`.

An update row is a tuple (framework_id, executor_id, task_id, state, uuid, status,
health, latest_state): `status` the serialised TaskStatus (what the scheduler's
callback gets), `uuid` b"" on the master's own updates, `health` one of
HEALTH_UNREPORTED, HEALTHY, UNHEALTHY, and `latest_state` the newest state the sender
knows for the task (agent -> master; elsewhere the update's own state).
"""
from __future__ import annotations

from corral._core.messages import (
    AckMessage,
    Acknowledge,  # scheduler -> master: rows of (agent_id, task_id, uuid)
    ExecutorStatusUpdate,  # executor driver -> agent
    ExecutorStatusUpdateAck,  # agent -> executor driver: rows of (task_id, uuid)
    StatusUpdateAck,  # master -> agent: rows of (framework_id, task_id, uuid)
    StatusUpdateMessage,  # agent -> master
    UpdateMessage,
    Updates,  # master -> scheduler: relayed updates and the master's own
)

HEALTH_UNREPORTED, HEALTHY, UNHEALTHY = 0, 1, 2

__all__ = ["HEALTH_UNREPORTED", "HEALTHY", "UNHEALTHY", "UpdateMessage", "ExecutorStatusUpdate", "StatusUpdateMessage",
           "Updates", "AckMessage", "Acknowledge", "StatusUpdateAck", "ExecutorStatusUpdateAck"]
