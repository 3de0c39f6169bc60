"""How an agent handles status updates (the status-update manager): one stream per
(framework, task) on the ack tracker; an executor's update is journalled first when the
framework checkpoints, then acknowledged to the executor and, when it heads its
stream, forwarded to the master; an acknowledgement from the master is journalled
before the stream's next update goes; heads are retried with backoff. The per-row
loops are in `_status`."""
from __future__ import annotations

from corral.net import wire
from corral._core.acks import AckResult, AddResult
from corral._core.rows import STATE, TASK_ID, UUID
from corral.engines.agent._status import agent_acks, agent_intake
from corral.engines.agent.checkpoints import DiscardRun, JournalAppend, JournalKind, JournalRecord
from corral.engines.agent.records import Connection, Task, _REGISTERED
from corral.engines.base import on
from corral.engines.common import TERMINAL_STATES, new_status
from corral.engines.status import UpdateRow, agent_id_suffix, status_row, update_of, with_latest
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb
from corral.security.links import MASTER_PRINCIPAL

Reason = pb.TaskStatus.Reason
SOURCE_AGENT = pb.TaskStatus.SOURCE_AGENT
#: the kind of batch updates to the master travel in (see `Engine.send_row`)
_FORWARD = (wire.StatusUpdateMessage,)
_DUPLICATE = AddResult.DUPLICATE
_HEAD = AddResult.FORWARD
_ACKED = AckResult.ACKED


class StatusMixin:
    """The agent engine's status-update manager (a part of `AgentEngine`)."""

    def _agent_update(self, fid: str, tid: str, eid: str, state: int, reason: int, message: str, now: float,
                      *, known: bool = True) -> None:
        """An agent-generated, reliable update (it carries a uuid and waits for an ack)."""
        status = new_status(tid, state, SOURCE_AGENT, now, reason=reason, message=message,
                            agent_id=self.agent_id, executor_id=eid or None, uuid=self.rng.randbytes(16))
        row = status_row(fid, status)
        task = self.tasks.get((fid, tid)) if known else None
        if task is None:
            # no task record: forward once, best effort
            if self.connection is Connection.REGISTERED:
                self.send_row(self.master, _FORWARD, row)
            return
        if self._enqueue(task, (fid, tid), row, now):
            self._forward([row])

    @on(T.EXECUTOR_STATUS_UPDATE)
    def _executor_status_update(self, sender: str, msg: wire.ExecutorStatusUpdate, now: float) -> None:
        """Updates from an executor: each is queued on its task's stream (journalled
        first when the framework checkpoints) and acked to the executor; the new heads
        go to the master."""
        if self.principal is not None and not self._executors_speak(msg.rows):
            return
        agent_id = self.agent_id or ""
        heads, journal, acks, unknown, duplicates = agent_intake(
            msg.rows, sender, self.executors, self.tasks.by_framework, self.updates, self._status_suffix(agent_id),
            now)
        for task, row in journal:  # on disk before the forward and before the executor's ack
            self._journal_update(task, row)
        if self.connection is _REGISTERED:
            self._forward(heads)
        for fid, rows in acks.items():
            self.send_rows(sender, (wire.ExecutorStatusUpdateAck, agent_id, fid), rows)
        counters = self.counters
        counters["status_updates_received"] += len(msg.rows) - unknown
        if unknown:
            counters["messages_from_unknown"] += unknown
        if duplicates:
            counters["duplicate_status_updates"] += duplicates

    def _status_suffix(self, agent_id: str) -> bytes:
        """What to append to an executor's serialised status to stamp our agent id."""
        if self._suffix[0] != agent_id:
            self._suffix = (agent_id, agent_id_suffix(agent_id) if agent_id else b"")
        return self._suffix[1]

    def _enqueue(self, task: Task, key: tuple[str, str], row: UpdateRow, now: float) -> bool:
        """Queue a reliable update of `task` (journalled first when the framework
        checkpoints). True when the caller must forward it now (`_forward`): it heads
        its stream and the master is there."""
        uuid = row[UUID]
        result = self.updates.add(key, uuid, row, now)
        if result is _DUPLICATE:
            self.counters["duplicate_status_updates"] += 1
            return False
        task.state = row[STATE]
        if task.checkpoint:  # on disk before the forward and before the executor's ack
            self._journal_update(task, row)
        return result is _HEAD and self.connection is _REGISTERED

    def _journal_update(self, task: Task, row: UpdateRow) -> None:
        self.emit(JournalAppend(task.framework_id, task.executor_id, task.container_id, row[TASK_ID],
                                JournalRecord(JournalKind.UPDATE, row[UUID], update_of(row, self.agent_id or ""))))

    def _forward(self, rows: list[UpdateRow]) -> None:
        """Send `rows`, heads of their streams, to the master."""
        if rows:
            self.counters["status_updates_forwarded"] += len(rows)
            self.send_rows(self.master, _FORWARD, rows)

    def _forward_heads(self, heads: list[tuple[tuple[str, str], bytes, UpdateRow]]) -> None:
        """(Re)send the heads (key, uuid, row) of streams (retries, reconnection), each
        with its task's latest state."""
        tasks = self.tasks
        self._forward([_with_task_state(row, tasks.get(key)) for key, _uuid, row in heads])

    @on(T.STATUS_UPDATE_ACK)
    def _status_update_ack(self, sender: str, msg: wire.StatusUpdateAck, now: float) -> None:
        """The master acknowledged updates: their streams move on (the ack journalled
        first when the framework checkpoints, before the stream's next update is
        forwarded); a stream left with nothing pending ends with its task when the
        update just acked was the task's terminal one."""
        principal = self.principal  # (interned by the dispatcher: the master's is MASTER_PRINCIPAL itself)
        if (sender != self.master or principal is not None and principal is not MASTER_PRINCIPAL) \
                and not self._from_master(sender):
            return
        heads, journal, ended, stale = agent_acks(
            msg.rows, self.updates, self.tasks.by_framework, TERMINAL_STATES, now)
        for task, tid, uuid in journal:
            self.emit(JournalAppend(task.framework_id, task.executor_id, task.container_id, tid,
                                    JournalRecord(JournalKind.ACK, uuid)))
        for key, task in ended:
            self._end_stream(key, task)
        counters = self.counters
        counters["acks_received"] += len(msg.rows) - stale
        if stale:
            counters["stale_acks"] += stale
        if self.connection is _REGISTERED:
            self._forward(heads)

    def _end_stream(self, key: tuple[str, str], task: Task | None) -> None:
        """The stream of `key` has nothing pending and nothing more to carry: it has no
        task record, or the update just acked was its task's terminal one (task.state
        is the latest), and the task ends here."""
        self.updates.remove(key)
        if task is not None:
            del self.tasks[key]
            executor = self.executors.get((key[0], task.executor_id))
            if executor is not None:
                executor.task_ids.discard(key[1])
            run = self._ended_runs.get(task.container_id)
            if run is not None:
                run[2].discard(key[1])
                if not run[2]:
                    del self._ended_runs[task.container_id]
                    self.emit(DiscardRun(run[0], run[1], task.container_id))

    def _run_ended(self, fid: str, eid: str, container_id: str, task_ids: set[str]) -> None:
        """A checkpointed run's executor is gone: its checkpoint goes once the updates of
        its tasks still held here are acknowledged (at once, when there are none)."""
        remaining = {tid for tid in task_ids if (fid, tid) in self.tasks}
        if remaining:
            self._ended_runs[container_id] = (fid, eid, remaining)
        else:
            self.emit(DiscardRun(fid, eid, container_id))


def _with_task_state(row: UpdateRow, task: Task | None) -> UpdateRow:
    """A stream's head as forwarded: with its task's latest state (its own when the task
    is gone)."""
    return row if task is None else with_latest(row, task.state)
