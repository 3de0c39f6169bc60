"""How a restarted agent recovers: rebuilt from its checkpoints (each task's update
stream replayed from its journal), its live executors asked to reregister, those that
do not within `recovery_timeout` killed; only then does it register with the master."""
from __future__ import annotations

import enum

from corral._core.decoding import canonical_task_id
from corral._core.rows import STATE
from corral.engines.agent.checkpoints import CheckpointExecutorExited, JournalKind, RecoveredState, RecoveredTask
from corral.engines.agent.containers import KillContainer
from corral.engines.agent.records import AgentTimer, Connection, Executor, ExecutorPhase, Task
from corral.engines.agent.status import _DUPLICATE
from corral.engines.base import on_timer
from corral.engines.common import is_terminal
from corral.engines.status import row_of
from corral.protos import corral_pb2 as pb

Reason = pb.TaskStatus.Reason


class RecoverMode(enum.Enum):
    """What a restarted agent does with the executors it finds in its checkpoints."""

    RECONNECT = "reconnect"
    CLEANUP = "cleanup"


class RecoveryMixin:
    """The agent engine's recovery from checkpoints (a part of `AgentEngine`)."""

    def recover(self, state: RecoveredState, live: set[str], mode: RecoverMode, now: float) -> None:
        """Rebuild the agent from its checkpoints, before `connect`. `live` holds the
        container ids whose executor process is still running."""
        self.recovering = True
        self._agent_checkpointed = True
        if state.agent.HasField("id"):
            self.agent_id = state.agent.id.value
            self.info.id.value = self.agent_id
        if state.agent.resources:
            # reservations and volumes made through operations live in the checkpoint
            del self.info.resources[:]
            self.info.resources.extend(state.agent.resources)
        self.frameworks.update(state.frameworks)
        for run in state.runs:
            fid, eid = run.framework_id, run.info.executor_id.value
            executor = None
            if not run.exited:
                executor = Executor(run.info, fid, run.container_id, run.command_executor,
                                    phase=ExecutorPhase.RECOVERING, transport=run.transport)
            recovered_ids = set()
            for recovered in run.tasks:
                task = self._recover_task(fid, eid, run.container_id, recovered, now)
                if task is not None:
                    recovered_ids.add(task.info.task_id.value)
                    if executor is not None and not run.transport:
                        executor.queued.append(task.info)  # never registered: never sent
            if executor is None:
                self._run_ended(fid, eid, run.container_id, recovered_ids)
                continue
            executor.task_ids.update(recovered_ids)
            if run.container_id not in live:
                self._fail_tasks(executor, Reason.REASON_EXECUTOR_TERMINATED,
                                 "the executor process was gone when the agent restarted", now)
                self.emit(CheckpointExecutorExited(fid, eid, run.container_id))
                self._run_ended(fid, eid, run.container_id, executor.task_ids)
                continue
            self.executors[(fid, eid)] = executor
            self.containers[run.container_id] = (fid, eid)
            self.counters["executors_recovered"] += 1
            if mode is RecoverMode.CLEANUP:
                self._fail_tasks(executor, Reason.REASON_AGENT_RESTARTED,
                                 "the agent restarted with --recover cleanup and killed the executor", now)
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, 0.0))
            elif executor.transport:
                self.send(executor.transport, pb.AgentReconnect(transport=self.transport))
        self.set_timer(AgentTimer.RECOVERY, now + self.config.recovery_timeout)
        self._recovery_progress(now)

    def _recover_task(self, fid: str, eid: str, container_id: str, recovered: RecoveredTask, now: float) -> Task | None:
        """The task with its update stream replayed from the journal; None when its
        terminal update was acknowledged (the task is over)."""
        key = (fid, canonical_task_id(recovered.info.task_id.value))
        task = Task(recovered.info, fid, eid, container_id=container_id, checkpoint=True)
        for record in recovered.journal:
            if record.kind is JournalKind.UPDATE:
                assert record.update is not None
                row = row_of(record.update)
                if self.updates.add(key, record.uuid, row, now) is not _DUPLICATE:
                    task.state = row[STATE]
            else:
                self.updates.ack(key, record.uuid, now)
        if is_terminal(task.state) and self.updates.head(key) is None:
            self.updates.remove(key)
            return None
        self.tasks[key] = task
        return task

    def _recovery_progress(self, now: float) -> None:
        if self.recovering and not any(e.phase is ExecutorPhase.RECOVERING for e in self.executors.values()):
            self._finish_recovery(now)

    @on_timer(AgentTimer.RECOVERY)
    def _recovery_timeout(self, _subject: None, now: float) -> None:
        self._finish_recovery(now)

    def _finish_recovery(self, now: float) -> None:
        """Executors that did not reregister are terminated; then register with the master."""
        self.cancel_timer(AgentTimer.RECOVERY)
        for executor in list(self.executors.values()):
            if executor.phase is ExecutorPhase.RECOVERING:
                self._fail_tasks(executor, Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                                 f"executor did not reregister within {self.config.recovery_timeout:g}s "
                                 "of the agent restarting", now)
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, 0.0))
        self.recovering = False
        if self.connection is Connection.REGISTERING:
            self.set_timer(AgentTimer.REGISTER, self._registration.next_deadline(now))
