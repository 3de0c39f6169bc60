"""The agent's executors: their registration and reregistration, exits and failed
launches (their live tasks failed), and the messages between them and their frameworks."""
from __future__ import annotations

import logging

from corral.net import wire
from corral.engines.agent.checkpoints import CheckpointExecutor, CheckpointExecutorExited
from corral.engines.agent.containers import KillContainer
from corral.engines.agent.records import AgentTimer, Connection, Executor, ExecutorPhase
from corral.engines.base import on, on_timer
from corral._core.rows import EXECUTOR_ID, FRAMEWORK_ID
from corral.engines.status import row_of
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb

Reason = pb.TaskStatus.Reason
log = logging.getLogger(__name__)


def executor_principal(framework_id: str, executor_id: str) -> str:
    """The principal of an executor's own key: on authenticated links each executor
    connects with a key of its own (the agent daemon gives it one), so it can speak only
    for itself."""
    return f"executor:{len(framework_id)}:{framework_id}/{executor_id}"


class ExecutorsMixin:
    """The agent engine's handling of executors (a part of `AgentEngine`)."""

    def _executors_speak(self, rows: list[tuple]) -> bool:
        """On authenticated links: whether every executor whose updates `rows` carry is
        the one whose connection sent them; a forgery is counted."""
        principal = self.principal
        seen = None
        for row in rows:
            key = (row[FRAMEWORK_ID], row[EXECUTOR_ID])
            if key == seen:
                continue
            executor = self.executors.get(key)
            if executor is not None and executor.principal != principal:
                self.counters["forged_senders"] += 1
                log.warning("dropped updates of executor %s of framework %s from principal %r", key[1], key[0],
                            principal)
                return False
            seen = key
        return True

    def _executor_registers_itself(self, sender: str, msg: pb.RegisterExecutor | pb.ReregisterExecutor) -> bool:
        """Whether a (re)registration names the connection it came from and, on
        authenticated links, comes over the named executor's own connection: the
        executor is known by that connection from then on."""
        if not self._from_itself(sender, msg.transport):
            return False
        if self.principal is None or self.principal == executor_principal(msg.framework_id.value,
                                                                           msg.executor_id.value):
            return True
        self.counters["forged_senders"] += 1
        log.warning("dropped the registration of executor %s of framework %s from principal %r",
                    msg.executor_id.value, msg.framework_id.value, self.principal)
        return False

    @on(T.REGISTER_EXECUTOR)
    def _register_executor(self, sender: str, msg: pb.RegisterExecutor, now: float) -> None:
        if not self._executor_registers_itself(sender, msg):
            return
        key = (msg.framework_id.value, msg.executor_id.value)
        executor = self.executors.get(key)
        if executor is None or executor.phase is ExecutorPhase.TERMINATING:
            self.send(msg.transport, pb.ShutdownExecutor(framework_id=msg.framework_id, executor_id=msg.executor_id))
            return
        # (a second registration from the same executor means our reply was lost: answer again;
        # a recovered executor that never registered before the restart registers afresh)
        self._set_transport(executor, msg.transport)
        executor.principal = self.principal
        executor.phase = ExecutorPhase.REGISTERED
        self.cancel_timer(AgentTimer.EXECUTOR_REGISTRATION, key)
        self.send(
            msg.transport,
            pb.ExecutorRegistered(
                executor_info=executor.info,
                framework_id=msg.framework_id,
                framework_info=self.frameworks[executor.framework_id],
                agent_id=pb.AgentID(value=self.agent_id or ""),
                agent_info=self.info,
            ),
        )
        framework = self.frameworks[executor.framework_id]
        for task in executor.queued:
            self.send(executor.transport, pb.RunExecutorTask(framework=framework, task=task))
        executor.queued.clear()
        self._recovery_progress(now)

    @on_timer(AgentTimer.EXECUTOR_REGISTRATION)
    def _executor_registration_timeout(self, key: tuple[str, str], now: float) -> None:
        executor = self.executors.get(key)
        if executor is not None and executor.phase is ExecutorPhase.LAUNCHING:
            self._fail_tasks(executor, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                             f"executor did not register within {self.config.executor_registration_timeout:g}s", now)
            executor.phase = ExecutorPhase.TERMINATING
            self.emit(KillContainer(executor.container_id, 0.0))

    def _from_itself(self, sender: str, transport: str) -> bool:
        """Whether an executor's (re)registration names the connection it came from:
        the executor is known by that connection from then on, so one naming another
        (a stranger's, or none) is dropped and counted."""
        if transport == sender:
            return True
        self.counters["messages_from_unknown"] += 1
        log.warning("executor registration from %s names transport %r: dropped", sender, transport)
        return False

    def _set_transport(self, executor: Executor, transport: str) -> None:
        if executor.transport != transport:
            executor.transport = transport
            if self.frameworks[executor.framework_id].checkpoint:
                self.emit(CheckpointExecutor(executor.framework_id, executor.info, executor.container_id,
                                             executor.command_executor, transport))

    @on(T.REREGISTER_EXECUTOR)
    def _reregister_executor(self, sender: str, msg: pb.ReregisterExecutor, now: float) -> None:
        if not self._executor_registers_itself(sender, msg):
            return
        key = (msg.framework_id.value, msg.executor_id.value)
        executor = self.executors.get(key)
        if executor is None or executor.phase not in (ExecutorPhase.RECOVERING, ExecutorPhase.REGISTERED):
            self.send(msg.transport, pb.ShutdownExecutor(framework_id=msg.framework_id, executor_id=msg.executor_id))
            return
        if executor.phase is ExecutorPhase.RECOVERING:
            self.counters["executors_reregistered"] += 1
        executor.phase = ExecutorPhase.REGISTERED
        self._set_transport(executor, msg.transport)
        executor.principal = self.principal
        agent_id = self.agent_id or ""
        self.send(msg.transport, pb.ExecutorReregistered(agent_id=pb.AgentID(value=agent_id), agent_info=self.info))
        for update in msg.updates:
            # journalled (unless a duplicate by uuid) before it is acked, as in _executor_status_update
            tid = update.status.task_id.value
            task = self.tasks.get((key[0], tid))
            if update.uuid and task is not None:
                update.status.agent_id.value = agent_id
                row = row_of(update)
                if self._enqueue(task, (key[0], tid), row, now):
                    self._forward([row])
            self.send_row(msg.transport, (wire.ExecutorStatusUpdateAck, agent_id, key[0]), (tid, update.uuid))
        known = {t.task_id.value for t in msg.tasks}
        framework = self.frameworks[executor.framework_id]
        for task in self._live_tasks(executor):
            if task.info.task_id.value not in known:  # launched, but the executor never got it
                self.send(msg.transport, pb.RunExecutorTask(framework=framework, task=task.info))
        executor.queued.clear()
        self._recovery_progress(now)

    def executor_exited(self, container_id: str, status: int, message: str, now: float,
                        reason: int = Reason.REASON_EXECUTOR_TERMINATED) -> None:
        """The container's process has ended (exit status, or -signal); `reason` is why,
        for the live tasks it fails (e.g. REASON_CONTAINER_LIMITATION_MEMORY)."""
        key = self.containers.pop(container_id, None)
        if key is None:
            return
        executor = self.executors.get(key)
        if executor is None or executor.container_id != container_id:
            return
        self.cancel_timer(AgentTimer.EXECUTOR_REGISTRATION, key)
        self._fail_tasks(executor, reason, message or f"executor exited with status {status}", now)
        del self.executors[key]
        framework = self.frameworks.get(key[0])
        if framework is not None and framework.checkpoint:
            self.emit(CheckpointExecutorExited(key[0], key[1], container_id))
            self._run_ended(key[0], key[1], container_id, executor.task_ids)
        self._recovery_progress(now)
        if self.connection is Connection.REGISTERED and self.agent_id:
            self.send(self.master, pb.ExitedExecutor(
                agent_id=pb.AgentID(value=self.agent_id), framework_id=pb.FrameworkID(value=key[0]),
                executor_id=pb.ExecutorID(value=key[1]), status=status))

    def executor_launch_failed(self, container_id: str, message: str, now: float) -> None:
        key = self.containers.pop(container_id, None)
        executor = self.executors.pop(key, None) if key else None
        if executor is not None:
            self.cancel_timer(AgentTimer.EXECUTOR_REGISTRATION, key)
            self._fail_tasks(executor, Reason.REASON_CONTAINER_LAUNCH_FAILED, message, now)

    def _fail_tasks(self, executor: Executor, reason: int, message: str, now: float) -> None:
        for task in self._live_tasks(executor):
            self._agent_update(executor.framework_id, task.info.task_id.value, executor.id,
                               pb.TASK_FAILED, reason, message, now)
        executor.queued.clear()

    @on(T.FRAMEWORK_TO_EXECUTOR)
    def _framework_to_executor(self, sender: str, msg: pb.FrameworkToExecutor, now: float) -> None:
        if not self._from_master(sender):
            return
        executor = self.executors.get((msg.framework_id.value, msg.executor_id.value))
        if executor is not None and executor.phase is ExecutorPhase.REGISTERED:
            self.send(executor.transport, pb.AgentToExecutorMessage(
                framework_id=msg.framework_id, executor_id=msg.executor_id, data=msg.data))

    @on(T.EXECUTOR_TO_AGENT_MESSAGE)
    def _executor_to_agent(self, sender: str, msg: pb.ExecutorToAgentMessage, now: float) -> None:
        executor = self.executors.get((msg.framework_id.value, msg.executor_id.value))
        if executor is None or executor.transport != sender or self.connection is not Connection.REGISTERED:
            return
        if executor.principal != self.principal:
            self.counters["forged_senders"] += 1
            return
        self.send(self.master, pb.ExecutorToFramework(
            framework_id=msg.framework_id, agent_id=pb.AgentID(value=self.agent_id or ""),
            executor_id=msg.executor_id, data=msg.data))
