"""The status path inside the engines: updates as rows, and the batches that carry them.

A status update, as the executor driver and the agent hold it until it is
acknowledged, is an `UpdateRow`: the ids and state the relays act on, and the
TaskStatus its source serialised, which relays pass along as bytes and only the
scheduler's driver parses. Updates and acks travel in `corral.net.wire` messages of rows,
one row per message unbatched and many batched: an engine adds rows with
`Engine.send_row`, and the `Batch` collecting them for one peer becomes a message when
the engine's actions are taken.
"""
from __future__ import annotations

from typing import Any

from corral._core.acks import AckTracker
from corral._core.rows import EXECUTOR_ID, FRAMEWORK_ID, LATEST_STATE, STATUS, UUID
from corral.engines.backoff import Backoff, Jitter
from corral.protos import corral_pb2 as pb
from corral.net.wire import HEALTH_UNREPORTED, HEALTHY, UNHEALTHY


#: An update row: the tuple (framework_id, executor_id, task_id, state, uuid, status,
#: health, latest_state) that `corral.net.wire`'s update messages carry; `corral._core.rows`
#: names each field's position. `uuid` is b"" on the master's own (unacknowledged)
#: updates, `status` the serialised TaskStatus, `health` the status's `healthy`
#: (HEALTH_UNREPORTED, HEALTHY or UNHEALTHY) and `latest_state` the newest state its
#: sender knows for the task (its own state where nothing is newer).
UpdateRow = tuple


#: a row's health as TaskStatus.healthy (`.get`: None when not reported)
HEALTHY_OF = {HEALTHY: True, UNHEALTHY: False}


def health_of(status: pb.TaskStatus) -> int:
    if not status.HasField("healthy"):
        return HEALTH_UNREPORTED
    return HEALTHY if status.healthy else UNHEALTHY


def row_of(update: pb.StatusUpdate) -> UpdateRow:
    """The row of an update carried whole (a report of unacknowledged updates, a journal,
    a reregistering executor); its latest state is the update's, or its own state."""
    status = update.status
    latest = update.latest_state if update.HasField("latest_state") else status.state
    return (update.framework_id.value, update.executor_id.value, status.task_id.value, status.state,
            update.uuid or status.uuid, status.SerializeToString(), health_of(status), latest)


def update_of(row: UpdateRow, agent_id: str = "", latest_state: int | None = None) -> pb.StatusUpdate:
    """The whole update of a row (for reports and journals); its agent id is the
    status's when `agent_id` is not given."""
    fid, eid, uuid = row[FRAMEWORK_ID], row[EXECUTOR_ID], row[UUID]
    status = pb.TaskStatus.FromString(row[STATUS])
    update = pb.StatusUpdate(status=status, uuid=uuid, timestamp=status.timestamp)
    update.framework_id.value = fid
    if eid:
        update.executor_id.value = eid
    agent_id = agent_id or status.agent_id.value
    if agent_id:
        update.agent_id.value = agent_id
    if latest_state is not None:
        update.latest_state = latest_state
    return update


def status_row(framework_id: str, status: pb.TaskStatus) -> UpdateRow:
    """The row of an update built here (by an agent, or the master's own)."""
    state = status.state
    return (framework_id, status.executor_id.value, status.task_id.value, state, status.uuid,
            status.SerializeToString(), health_of(status), state)


def with_latest(row: UpdateRow, latest_state: int) -> UpdateRow:
    """`row` with `latest_state` as its latest state (itself when it has it already)."""
    return row if row[LATEST_STATE] == latest_state else (*row[:LATEST_STATE], latest_state)


def ack_tracker(policy: Backoff, remember: int) -> AckTracker:
    """The streams of updates a sender holds until they are acknowledged (`remember`: the
    acknowledged uuids each keeps, to drop retries of them), each head retransmitted as
    `policy` says: the compiled tracker keeps the policy's numbers in C fields, and its
    retransmissions are never jittered (ValueError for a policy that is)."""
    if policy.jitter is not Jitter.NONE:
        raise ValueError(f"an ack tracker's retransmissions are not jittered: {policy}")
    return AckTracker(policy.initial, policy.cap, remember=remember, factor=policy.factor)


def agent_id_suffix(agent_id: str) -> bytes:
    """Bytes that, appended to a serialised TaskStatus, set its agent id (a parser merges
    a field seen twice: the last value wins)."""
    return pb.TaskStatus(agent_id=pb.AgentID(value=agent_id)).SerializePartialToString()


# -- batches ---------------------------------------------------------------------------
class Batch:
    """The rows of one status-path message to `to`. `kind` is the message's class (a
    `corral.net.wire` class, or a function that makes the message of its rows) followed
    by the values of the fields all its rows share: the framework id of an Acknowledge,
    the agent id of a StatusUpdateAck, the agent and framework ids of an
    ExecutorStatusUpdateAck."""

    __slots__ = ("to", "kind", "rows")

    def __init__(self, to: str, kind: tuple[Any, ...]) -> None:
        self.to = to
        self.kind = kind
        self.rows: list[tuple[Any, ...]] = []

    def message(self) -> Any:
        return self.kind[0](*self.kind[1:], self.rows)
