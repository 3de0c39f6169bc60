"""The master's status path, per row: the loops of the master engine's StatusUpdateMessage
and Acknowledge handlers (`status`), and `MasterTask`, the master's record of a task,
whose fields they read and write (C struct fields in the compiled build).

One source for both builds: plain Python as is; compiled by Cython with _status.pxd.
"""
from __future__ import annotations

from corral._core.rows import (
    ACK_ID, ACK_TASK_ID, ACK_UUID, FRAMEWORK_ID, HEALTH, LATEST_STATE, STATE, STATUS, TASK_ID, UUID,
)
from corral.protos import corral_pb2 as pb

#: a task's state until an update says otherwise
_STAGING = pb.TASK_STAGING
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
    most MAX_TASK_STATUSES: the first and the latest), its history for operators."""

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


def master_updates(rows, agent, frameworks, healthy_of, set_latest):
    """The master's share of a StatusUpdateMessage from `agent` (its tasks by (framework
    id, task id) in `agent.tasks`; `frameworks` the master's by id, each with its tasks by
    task id in `tasks`): each update of a task the master knows on that agent sets the
    task's head state, uuid and health (and, when it changes either, joins the task's
    `statuses`), and `set_latest(task, agent, state)` is called when it brings a new
    latest state (that frees resources). A task is looked up by its id among its
    framework's (a str key, compared by identity: the decoder hands out one str per task
    id), and in `agent.tasks` only when that finds none of this agent's.
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
        fid = row[FRAMEWORK_ID]
        tid = row[TASK_ID]
        uuid = row[UUID]
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
            if row[LATEST_STATE] != task.state:
                set_latest(task, agent, row[LATEST_STATE])
            healthy = healthy_of.get(row[HEALTH])
            if row[STATE] != task.status_update_state or healthy is not task.healthy:
                statuses = task.statuses
                if len(statuses) >= MAX_TASK_STATUSES:
                    del statuses[1]
                statuses.append(row[STATUS])
            task.status_update_state = row[STATE]
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
        agent_id = row[ACK_ID]
        tid = row[ACK_TASK_ID]
        uuid = row[ACK_UUID]
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
