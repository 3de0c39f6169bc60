"""The agent's status path, per row: the loops of the agent engine's ExecutorStatusUpdate
and StatusUpdateAck handlers (`status`), and `AgentTask`, the agent's record of a task,
whose fields they read and write (C struct fields in the compiled build).

One source for both builds: plain Python as is; compiled by Cython with _status.pxd.
"""
from __future__ import annotations

from corral._core.acks import AckResult, AddResult
from corral._core.rows import (ACK_ID, ACK_TASK_ID, ACK_UUID, EXECUTOR_ID, FRAMEWORK_ID, HEALTH, LATEST_STATE, STATE,
                               STATUS, TASK_ID, UUID)
from corral.protos import corral_pb2 as pb

_FORWARD = AddResult.FORWARD
_DUPLICATE = AddResult.DUPLICATE
_ACKED = AckResult.ACKED
#: a task's state until an update says otherwise
_STAGING = pb.TASK_STAGING


class AgentTask:
    """What the agent keeps of a task: its TaskInfo (`info`), framework and executor
    ids, the newest state it has had an update for (`state`), the executor run it
    belongs to (`container_id`, its checkpoint directory) and whether its framework
    checkpoints."""

    __slots__ = ("info", "framework_id", "executor_id", "state", "container_id", "checkpoint")

    def __init__(self, info, framework_id, executor_id, state=_STAGING, container_id="", checkpoint=False):
        self.info = info
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.state = state
        self.container_id = container_id
        self.checkpoint = checkpoint

    def __repr__(self):
        return f"AgentTask({self.info.task_id.value!r} of {self.framework_id!r}, state {self.state})"


def agent_intake(rows, sender, executors, tasks, tracker, suffix, now):
    """The agent's share of an ExecutorStatusUpdate from `sender`: each update of a known
    executor of that sender is queued on its task's stream (`tracker`, keyed by
    (framework id, task id)), stamped with `suffix` (the agent id, appended to the
    status), and the task (`tasks`: each framework's by task id) takes its state.
    Returns (heads, journal, acks, unknown, duplicates): the updates that became the
    heads of their streams, the (task, row) of
    each queued update of a task that checkpoints, the acks to send the executor by
    framework id ([(task id, uuid)]), the rows of unknown executors or without a uuid,
    and the duplicates dropped."""
    heads = []
    journal = []
    acks = {}
    unknown = 0
    duplicates = 0
    known_fid = None
    known_eid = None
    fw_tasks = None
    ack_fid = None
    out = None
    for row in rows:
        fid = row[FRAMEWORK_ID]
        eid = row[EXECUTOR_ID]
        uuid = row[UUID]
        if fid is not known_fid or eid is not known_eid:  # (one executor sends them all)
            executor = executors.get((fid, eid))
            if executor is None or executor.transport != sender:
                unknown += 1
                continue
            known_fid = fid
            known_eid = eid
            fw_tasks = tasks.get(fid)
        if not uuid:
            unknown += 1
            continue
        tid = row[TASK_ID]
        key = (fid, tid)
        task = fw_tasks.get(tid) if fw_tasks is not None else None
        if task is not None:
            state = row[STATE]
            queued = (fid, eid, tid, state, uuid, row[STATUS] + suffix, row[HEALTH], state)  # (an update row)
            result = tracker.add(key, uuid, queued, now)
            if result is _DUPLICATE:
                duplicates += 1
            else:
                task.state = state
                if task.checkpoint:
                    journal.append((task, queued))
                if result is _FORWARD:
                    heads.append(queued)
        if fid is not ack_fid:
            ack_fid = fid
            out = acks.get(fid)
            if out is None:
                out = acks[fid] = []
        out.append((tid, uuid))
    return heads, journal, acks, unknown, duplicates


def agent_acks(rows, tracker, tasks, terminal, now):
    """The agent's share of a StatusUpdateAck (rows of (framework id, task id, uuid);
    `tasks`: each framework's by task id): each ack of a stream's head moves the stream
    on. Returns (heads, journal, ended, stale): the streams' next updates, to forward
    (each with its task's latest state), the (task, task id, uuid) of each acked update
    of a task that checkpoints, the (key, task or None) of the streams left with nothing
    pending whose task is gone or in a state of `terminal` (the streams to end), and
    the acks that were stale."""
    heads = []
    journal = []
    ended = []
    stale = 0
    known_fid = None
    fw_tasks = None
    for row in rows:
        fid = row[ACK_ID]
        tid = row[ACK_TASK_ID]
        key = (fid, tid)
        uuid = row[ACK_UUID]
        result, nxt = tracker.ack_next(key, uuid, now)
        if result is not _ACKED:
            stale += 1
            continue
        if fid is not known_fid:
            known_fid = fid
            fw_tasks = tasks.get(fid)
        task = fw_tasks.get(tid) if fw_tasks is not None else None
        if task is not None and task.checkpoint:
            journal.append((task, tid, uuid))
        if nxt is None:
            if task is None or task.state in terminal:
                ended.append((key, task))
            continue
        if task is not None:
            state = task.state
            if nxt[LATEST_STATE] != state:
                nxt = (nxt[FRAMEWORK_ID], nxt[EXECUTOR_ID], nxt[TASK_ID], nxt[STATE], nxt[UUID], nxt[STATUS], nxt[HEALTH],
                       state)
        heads.append(nxt)
    return heads, journal, ended, stale
