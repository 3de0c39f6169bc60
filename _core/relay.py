"""The status path's per-row work: what the engines do with each row of a status-path
message (corral.wire), as loops that the compiled build runs in C.

Each function is the inner loop of one engine handler, over the engine's own state (its
dicts, task records and ack tracker), which it reads and updates exactly as the handler
would; the handler keeps everything else (who the sender is, counters, checkpoints,
what to send). Rows are the tuples of `corral.engines.status`.

One source for both builds: plain Python as is; compiled by Cython with relay.pxd.
"""
from __future__ import annotations

import struct

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

from .acks import AckResult, AddResult, RecentUuids
from .columns import ColumnsError, agent_id_of, status_fields

_FORWARD = AddResult.FORWARD
_DUPLICATE = AddResult.DUPLICATE
_ACKED = AckResult.ACKED
#: the twin's packing of an update's time (protobuf's double: little-endian) and uuid
_DOUBLE = struct.Struct("<d").pack
_UUID = struct.Struct(">8sQ").pack
#: the compiled build copies the time's bytes as they are in memory
_LITTLE_ENDIAN = struct.pack("=d", 1.0) == struct.pack("<d", 1.0)


class Callback:
    """An engine's action: run the user's callback `event` (an enum whose value is the
    method name) with `args`, off the I/O thread. A status update's callback also
    carries `ack`, the row that acknowledges it (agent id, task id, uuid; see the
    scheduler engine's `acknowledge_delivered`), None when the update is not to be
    acknowledged. (Here, not with the other actions in corral.engines.base, so that
    `scheduler_updates` makes one per update as a C struct.)"""

    __slots__ = ("event", "args", "ack")

    def __init__(self, event, *args):
        self.event = event
        self.args = args
        self.ack = None

    def __repr__(self):
        return f"Callback({self.event.name}, {len(self.args)} args)"


class UpdateSource:
    """An executor driver's status updates as the rows it queues (`tracker`, keyed by
    task id) and sends: each serialised TaskStatus gets `stamp` appended (the driver's
    source, executor and agent ids, then the timestamp's key; protobuf merges the fields
    appended to a message), the time, `uuid_key` and a new uuid: `prefix` (8 random
    bytes, the driver's) then a counter, big-endian. The user's message is neither
    copied nor changed."""

    __slots__ = ("framework_id", "executor_id", "stamp", "_prefix", "_uuid_key", "_count", "_tracker")

    def __init__(self, framework_id, executor_id, prefix, stamp, uuid_key, tracker):
        if type(prefix) is not bytes or len(prefix) != 8:
            raise ValueError(f"a uuid prefix is 8 bytes, not {prefix!r}")
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.stamp = stamp
        self._prefix = prefix
        self._uuid_key = uuid_key
        self._count = 0
        self._tracker = tracker

    def add(self, serialised, now):
        """Queue the update of `serialised` (a TaskStatus's bytes) on its task's stream.
        Returns its row when it heads the stream (to send now), else None. ColumnsError
        when the bytes lack a task id or state."""
        tid, state, health, _agent_id = status_fields(serialised)
        count = self._count
        self._count = count + 1
        if _COMPILED and _LITTLE_ENDIAN:
            uuid = PyBytes_FromStringAndSize(cython.NULL, 16)
            out = PyBytes_AS_STRING(uuid)
            memcpy(out, PyBytes_AS_STRING(self._prefix), 8)
            for i in range(8):
                out[15 - i] = cython.cast(cython.char, (count >> (8 * i)) & 0xFF)
            n = len(serialised)
            m = len(self.stamp)
            k = len(self._uuid_key)
            data = PyBytes_FromStringAndSize(cython.NULL, n + m + 8 + k + 16)
            out = PyBytes_AS_STRING(data)
            memcpy(out, PyBytes_AS_STRING(serialised), n)
            memcpy(out + n, PyBytes_AS_STRING(self.stamp), m)
            memcpy(out + n + m, cython.address(now), 8)
            memcpy(out + n + m + 8, PyBytes_AS_STRING(self._uuid_key), k)
            memcpy(out + n + m + 8 + k, PyBytes_AS_STRING(uuid), 16)
        else:
            uuid = _UUID(self._prefix, count)
            data = b"".join((serialised, self.stamp, _DOUBLE(now), self._uuid_key, uuid))
        row = (self.framework_id, self.executor_id, tid, state, uuid, data, health, state)
        if self._tracker.add(tid, uuid, row, now) is _FORWARD:
            return row
        return None


#: TASK_STAGING (protos/corral.proto): a task's state until an update says otherwise
_STAGING = 6
#: the statuses a MasterTask keeps (its history: the first, then the latest ones)
MAX_TASK_STATUSES = 32


class MasterTask:
    """What the master keeps of a task: plain values only (no protobuf message, which
    would keep the whole launch message it came in alive). `state`: the newest state
    known (frees resources when terminal); `status_update_state`, `status_update_uuid`:
    the update at the head of the agent's stream (what reconciliation answers);
    `acked_uuid`: the last update whose acknowledgement the framework sent and the
    master forwarded; `healthy`: what the last update reported (None: not reported);
    `role`: the role whose allocation its resources count against; `statuses`: the
    serialised TaskStatus of each update that changed the head's state or health (at
    most MAX_TASK_STATUSES: the first and the latest), its history for operators.
    (Here, so that `master_updates` and `master_acks` read and write these as C struct
    fields.)"""

    __slots__ = ("state", "status_update_state", "status_update_uuid", "acked_uuid", "healthy", "agent_id", "id",
                 "name", "framework_id", "resources", "role", "statuses")

    def __init__(self, id, name, framework_id, resources, *, agent_id, state=_STAGING, role="*"):
        self.id = id
        self.name = name
        self.framework_id = framework_id
        self.resources = resources
        self.agent_id = agent_id
        self.state = state
        self.status_update_state = _STAGING
        self.status_update_uuid = b""
        self.acked_uuid = b""
        self.healthy = None
        self.role = role
        self.statuses = []

    def __repr__(self):
        return f"MasterTask({self.id!r} of {self.framework_id!r} on {self.agent_id!r}, state {self.state})"


class AgentTask:
    """What the agent keeps of a task: its TaskInfo (`info`), framework and executor
    ids, the newest state it has had an update for (`state`), the executor run it
    belongs to (`container_id`, its checkpoint directory) and whether its framework
    checkpoints. (Here, so that `agent_intake` and `agent_acks` read and write these
    as C struct fields.)"""

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


class TrackedTask:
    """What the scheduler driver's reconciler keeps of a non-terminal task: the agent it
    runs on ("" when unknown), its latest state and when an update last said so.
    (Here, so that `track_updates` writes these as C struct fields.)"""

    __slots__ = ("agent_id", "state", "last_update")

    def __init__(self, agent_id, state, last_update):
        self.agent_id = agent_id
        self.state = state
        self.last_update = last_update

    def __repr__(self):
        return f"TrackedTask(on {self.agent_id!r}, state {self.state}, at {self.last_update})"


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
        fid = row[0]
        eid = row[1]
        uuid = row[4]
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
        tid = row[2]
        key = (fid, tid)
        task = fw_tasks.get(tid) if fw_tasks is not None else None
        if task is not None:
            state = row[3]
            queued = (fid, eid, tid, state, uuid, row[5] + suffix, row[6], state)
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
        fid = row[0]
        key = (fid, row[1])
        uuid = row[2]
        result, nxt = tracker.ack_next(key, uuid, now)
        if result is not _ACKED:
            stale += 1
            continue
        if fid is not known_fid:
            known_fid = fid
            fw_tasks = tasks.get(fid)
        task = fw_tasks.get(row[1]) if fw_tasks is not None else None
        if task is not None and task.checkpoint:
            journal.append((task, row[1], uuid))
        if nxt is None:
            if task is None or task.state in terminal:
                ended.append((key, task))
            continue
        if task is not None:
            state = task.state
            if nxt[7] != state:
                nxt = (nxt[0], nxt[1], nxt[2], nxt[3], nxt[4], nxt[5], nxt[6], state)
        heads.append(nxt)
    return heads, journal, ended, stale


def executor_acks(rows, tracker, now):
    """The executor driver's share of an ExecutorStatusUpdateAck (rows of (task id,
    uuid)): each ack of a stream's head moves it on; a stream left empty is dropped.
    Returns (heads, emptied): the streams' next updates, to send, and whether a stream
    was left empty."""
    heads = []
    emptied = False
    for row in rows:
        key = row[0]
        result, nxt = tracker.ack_next(key, row[1], now)
        if result is _ACKED:
            if nxt is None:
                tracker.remove(key)
                emptied = True
            else:
                heads.append(nxt)
    return heads, emptied


def master_updates(rows, agent, frameworks, healthy_of, set_latest):
    """The master's share of a StatusUpdateMessage from `agent` (its tasks by (framework
    id, task id) in `agent.tasks`; `frameworks` the master's by id, each with its tasks by
    task id in `tasks`): each update of a task the master knows on that agent sets the
    task's head state, uuid and health (and, when it changes either, joins the task's
    `statuses`), and `set_latest(task, agent, state)` is called when it brings a new
    latest state (that frees resources). A task is looked up by its
    id among its framework's (a str key, compared by identity: the decoder hands out one
    str per task id), and in `agent.tasks` only when that finds none of this agent's.
    Returns (relayed, reacks, unknown): the rows to relay by framework id, the (framework
    id, task id, uuid) of retries of updates already acknowledged (to ack again, not
    relay), and the updates of unknown tasks (relayed when they carry a uuid: a retry of
    a terminal update whose ack was lost after the task was forgotten)."""
    relayed = {}
    reacks = []
    unknown = 0
    out_fid = None
    out = None
    agent_id = agent.id
    agent_tasks = agent.tasks
    known_fid = None
    fw_tasks = None
    for row in rows:
        fid = row[0]
        tid = row[2]
        uuid = row[4]
        if fid is not known_fid:
            known_fid = fid
            fw = frameworks.get(fid)
            fw_tasks = fw.tasks if fw is not None else None
        task = fw_tasks.get(tid) if fw_tasks is not None else None
        if task is None or task.agent_id != agent_id:
            task = agent_tasks.get((fid, tid))
        if task is None:
            unknown += 1
            if not uuid:
                continue
        elif uuid and uuid == task.acked_uuid:
            reacks.append((fid, tid, uuid))
            continue
        else:
            if row[7] != task.state:
                set_latest(task, agent, row[7])
            healthy = healthy_of.get(row[6])
            if row[3] != task.status_update_state or healthy is not task.healthy:
                statuses = task.statuses
                if len(statuses) >= MAX_TASK_STATUSES:
                    del statuses[1]
                statuses.append(row[5])
            task.status_update_state = row[3]
            task.status_update_uuid = uuid
            task.healthy = healthy
        if fid is not out_fid:
            out_fid = fid
            out = relayed.get(fid)
            if out is None:
                out = relayed[fid] = []
        out.append(row)
    return relayed, reacks, unknown


def master_acks(rows, framework_id, tasks, agents, terminal):
    """The master's share of an Acknowledge from a framework (`tasks`: its tasks by id,
    `agents` the master's by id, each with its tasks by (framework id, task id) in
    `tasks`; rows of (agent id, task id, uuid)): each ack is forwarded to its agent, and
    a task whose head it acknowledges remembers it (`terminal`: the terminal states).
    The task is the framework's of that id, or, when that one runs on another agent (the
    id was used again once the first task ended), the named agent's of that id.
    Returns (forwarded, finished, invalid): the acks to forward by agent id ([(framework
    id, task id, uuid)]), the tasks whose terminal update was acknowledged (to forget),
    and the acks naming an unknown agent or an agent that has no task of that id while
    the framework's runs on another."""
    forwarded = {}
    finished = []
    invalid = 0
    out_agent = None
    out = None
    agent = None
    for row in rows:
        agent_id = row[0]
        tid = row[1]
        uuid = row[2]
        if agent_id is not out_agent:
            agent = agents.get(agent_id)
            if agent is None:
                invalid += 1
                continue
            out = forwarded.get(agent_id)
            if out is None:
                out = forwarded[agent_id] = []
            out_agent = agent_id
        task = tasks.get(tid)
        if task is not None and task.agent_id != agent_id:
            task = agent.tasks.get((framework_id, tid))
            if task is None:
                invalid += 1
                continue
        out.append((framework_id, tid, uuid))
        if task is not None:
            if uuid == task.status_update_uuid:
                task.acked_uuid = task.status_update_uuid  # the same object: no second copy per task
                if task.status_update_state in terminal:
                    finished.append(task)
            else:
                task.acked_uuid = uuid
    return forwarded, finished, invalid


def scheduler_updates(rows, delivered_by_task, remembered, parse, decode_error, terminal_states, reconciler, event,
                      actions, now):
    """The scheduler driver's share of an Updates message: each update is handed to the
    user (a Callback of `event`, appended to `actions`, with the TaskStatus `parse`d from
    its bytes) once per uuid, remembered among the task's last `remembered` delivered
    uuids (`delivered_by_task`: task id -> RecentUuids), and told to the `reconciler`
    (one `updated` call for them all). A uuid is empty on the master's own updates,
    which are never acknowledged. Returns
    (fresh, terminal, duplicates, malformed): the updates delivered, the task ids of
    those that were terminal, the (task id, uuid, status bytes, acknowledged yet) of
    updates delivered before, and the statuses that did not parse (`decode_error`)."""
    terminal = []
    duplicates = []
    seen = []
    fresh = 0
    malformed = 0
    for row in rows:
        tid = row[2]
        state = row[3]
        uuid = row[4]
        delivered = None
        if uuid:
            delivered = delivered_by_task.get(tid)
            if delivered is None:
                delivered = RecentUuids.of(remembered)
                delivered_by_task[tid] = delivered
            slot = delivered.find(uuid)
            if slot >= 0:
                duplicates.append((tid, uuid, row[5], delivered.flagged(slot)))
                continue
        try:
            status = parse(row[5])
        except decode_error:
            malformed += 1
            continue
        if delivered is not None:
            delivered.add(uuid, False)
        fresh += 1
        ended = state in terminal_states
        try:  # (what the parsed status says, without a protobuf attribute read)
            agent_id = agent_id_of(row[5])
        except ColumnsError:  # (a field protobuf skips and our reader does not)
            agent_id = status.agent_id.value
        seen.append((tid, agent_id, state, ended))
        if ended:
            terminal.append(tid)
        callback = Callback.__new__(Callback)
        callback.event = event
        callback.args = (status,)
        callback.ack = (agent_id, tid, uuid) if uuid else None
        actions.append(callback)
    if seen:
        reconciler.updated(seen, now)
    return fresh, terminal, duplicates, malformed


def track_updates(updates, tasks, stuck_checked, pending, now):
    """The reconciler's share of the updates of one message (rows of (task id, agent
    id, state, terminal), in order): a terminal task is forgotten (`tasks`, task id ->
    TrackedTask, and `stuck_checked`), any other is recorded (a new one added), and
    each leaves `pending` (the current round's tasks; None when no round runs).
    Returns whether one of them emptied `pending` (the round converged; later updates
    leave it alone)."""
    emptied = False
    for row in updates:
        tid = row[0]
        if row[3]:
            tasks.pop(tid, None)
            stuck_checked.pop(tid, None)
        else:
            record = tasks.get(tid)
            if record is None:
                tasks[tid] = TrackedTask(row[1], row[2], now)
            else:
                record.state = row[2]
                record.last_update = now
                if row[1]:
                    record.agent_id = row[1]
        if pending is not None and pending.pop(tid, None) is not None and not pending:
            pending = None
            emptied = True
    return emptied


def mark_acknowledged(acks, delivered_by_task):
    """Flag the delivered uuids that `acks` (rows of (agent id, task id, uuid))
    acknowledge, in `delivered_by_task` (task id -> RecentUuids)."""
    for row in acks:
        delivered = delivered_by_task.get(row[1])
        if delivered is not None:
            slot = delivered.find(row[2])
            if slot >= 0:
                delivered.set_flag(slot)
    return 0
