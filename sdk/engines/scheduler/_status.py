"""The scheduler driver's status path, per row: the loops of the scheduler engine's
Updates handler and acknowledgements (`status`: delivery once per uuid), and of its
reconciler's record of each task (`reconcile`), with `TrackedTask`, that record (C
struct fields in the compiled build).

One source for both builds: plain Python as is; compiled by Cython with _status.pxd.
"""
from __future__ import annotations

from corral._core.acks import RecentUuids
from corral._core.decoding import ColumnsError, agent_id_of
from corral._core.rows import ACK_TASK_ID, ACK_UUID, STATE, STATUS, TASK_ID, UUID
from corral.engines._callback import Callback

#: what the reconciler learns of an update (`track_updates`): (task id, agent id, state, terminal)
SEEN_TASK_ID = 0
SEEN_AGENT_ID = 1
SEEN_STATE = 2
SEEN_TERMINAL = 3


class TrackedTask:
    """What the scheduler driver's reconciler keeps of a non-terminal task: the agent it
    runs on ("" when unknown), its latest state and when an update last said so."""

    __slots__ = ("agent_id", "state", "last_update")

    def __init__(self, agent_id, state, last_update):
        self.agent_id = agent_id
        self.state = state
        self.last_update = last_update

    def __repr__(self):
        return f"TrackedTask(on {self.agent_id!r}, state {self.state}, at {self.last_update})"


def scheduler_updates(rows, delivered_by_task, remembered, parse, decode_error, terminal_states, event):
    """The scheduler driver's share of an Updates message: each update is handed to the
    user (a Callback of `event`, with the TaskStatus `parse`d from its bytes) once per
    uuid, remembered among the task's last `remembered` delivered uuids
    (`delivered_by_task`: task id -> RecentUuids). A uuid is empty on the master's own
    updates, which are never acknowledged. Returns (callbacks, seen, terminal,
    duplicates, malformed): a Callback per update delivered, what the reconciler learns
    of each (rows of (task id, agent id, state, terminal): `track_updates`), the task
    ids of those that were terminal, the (task id, uuid, status bytes, acknowledged yet)
    of updates delivered before, and the statuses that did not parse (`decode_error`)."""
    callbacks = []
    seen = []
    terminal = []
    duplicates = []
    malformed = 0
    for row in rows:
        tid = row[TASK_ID]
        state = row[STATE]
        uuid = row[UUID]
        delivered = None
        if uuid:
            delivered = delivered_by_task.get(tid)
            if delivered is None:
                delivered = RecentUuids.of(remembered)
                delivered_by_task[tid] = delivered
            slot = delivered.find(uuid)
            if slot >= 0:
                duplicates.append((tid, uuid, row[STATUS], delivered.flagged(slot)))
                continue
        try:
            status = parse(row[STATUS])
        except decode_error:
            malformed += 1
            continue
        if delivered is not None:
            delivered.add(uuid, False)
        ended = state in terminal_states
        try:  # (what the parsed status says, without a protobuf attribute read)
            agent_id = agent_id_of(row[STATUS])
        except ColumnsError:  # (a field protobuf skips and our reader does not)
            agent_id = status.agent_id.value
        seen.append((tid, agent_id, state, ended))  # (SEEN_TASK_ID, SEEN_AGENT_ID, SEEN_STATE, SEEN_TERMINAL)
        if ended:
            terminal.append(tid)
        callback = Callback.__new__(Callback)
        callback.event = event
        callback.args = (status,)
        callback.ack = (agent_id, tid, uuid) if uuid else None  # (an Acknowledge row)
        callbacks.append(callback)
    return callbacks, seen, terminal, duplicates, malformed


def mark_acknowledged(acks, delivered_by_task):
    """Flag the delivered uuids that `acks` (rows of (agent id, task id, uuid))
    acknowledge, in `delivered_by_task` (task id -> RecentUuids)."""
    for row in acks:
        delivered = delivered_by_task.get(row[ACK_TASK_ID])
        if delivered is not None:
            slot = delivered.find(row[ACK_UUID])
            if slot >= 0:
                delivered.set_flag(slot)
    return 0


def track_updates(updates, tasks, stuck_checked, pending, now):
    """The reconciler's share of the updates of one message (rows of (task id, agent
    id, state, terminal), in order): a terminal task is forgotten (`tasks`, task id ->
    TrackedTask, and `stuck_checked`), any other is recorded (a new one added), and
    each leaves `pending` (the current round's tasks; None when no round runs).
    Returns whether one of them emptied `pending` (the round converged; later updates
    leave it alone)."""
    emptied = False
    for row in updates:
        tid = row[SEEN_TASK_ID]
        if row[SEEN_TERMINAL]:
            tasks.pop(tid, None)
            stuck_checked.pop(tid, None)
        else:
            record = tasks.get(tid)
            if record is None:
                tasks[tid] = TrackedTask(row[SEEN_AGENT_ID], row[SEEN_STATE], now)
            else:
                record.state = row[SEEN_STATE]
                record.last_update = now
                if row[SEEN_AGENT_ID]:
                    record.agent_id = row[SEEN_AGENT_ID]
        if pending is not None and pending.pop(tid, None) is not None and not pending:
            pending = None
            emptied = True
    return emptied
