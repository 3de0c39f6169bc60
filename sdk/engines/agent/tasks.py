"""The agent's tasks: launches from the master (an executor started for them, or the task
queued for one), the master's questions about tasks it misses, resources checkpointed
after operations, kills and framework shutdowns."""
from __future__ import annotations

import logging

from corral._core.decoding import canonical_task_id
from corral.engines.agent.checkpoints import (CheckpointAgent, CheckpointExecutor, CheckpointFramework, CheckpointTask,
                                             DiscardFramework)
from corral.engines.agent.containers import (KillContainer, LaunchExecutor, LinkVolumes, UpdateVolumes,
                                            persistent_volumes)
from corral.engines.agent.records import AgentTimer, Connection, Executor, ExecutorPhase, Task
from corral.engines.agent.registration import _copy
from corral.engines.base import on
from corral.engines.common import for_framework, is_terminal
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb

Reason = pb.TaskStatus.Reason
log = logging.getLogger(__name__)


def task_containers(rows: list[tuple[str, str, str, str]]) -> pb.TaskContainers:
    """The TaskContainers message of rows (framework id, task id, executor id, container id)."""
    framework_ids, task_ids, executor_ids, container_ids = zip(*rows)
    return pb.TaskContainers(framework_ids=framework_ids, task_ids=task_ids, executor_ids=executor_ids,
                             container_ids=container_ids)


#: the kind of batch the runs of launched tasks travel in (see `Engine.send_row`)
_TASK_CONTAINERS = (task_containers,)


class TasksMixin:
    """The agent engine's launches and kills (a part of `AgentEngine`)."""

    @on(T.RUN_TASK)
    def _run_task(self, sender: str, msg: pb.RunTask, now: float) -> None:
        if not self._from_master(sender):
            return
        if self.connection is Connection.REGISTERING and self.agent_id is None:
            # our master registered us (it launches on us) but its reply has not reached
            # us yet: run the task once it does. The master sends each launch once.
            self._held_launches.append(msg)
            return
        if self.connection is not Connection.REGISTERED:
            log.info("launch of task %s dropped while reregistering (the master learns from our report)",
                     msg.task.task_id.value)
            return
        fid = msg.framework.id.value
        task = msg.task
        tid = canonical_task_id(task.task_id.value)
        if (fid, tid) in self.tasks and not is_terminal(self.tasks[(fid, tid)].state):
            return  # a duplicate launch
        checkpoint = msg.framework.checkpoint
        if checkpoint:
            if not self._agent_checkpointed:
                self._agent_checkpointed = True
                self.emit(CheckpointAgent(_copy(self.info)))
            if self.frameworks.get(fid) != msg.framework:
                self.emit(CheckpointFramework(msg.framework))
        self.frameworks[fid] = msg.framework
        self.counters["tasks_launched"] += 1
        if task.HasField("command"):
            info = pb.ExecutorInfo(name=f"command executor for {tid}")
            info.executor_id.value = tid
            info.framework_id.value = fid
            info.command.shell = False
            info.command.value = self.config.command_executor[0]
            info.command.arguments.extend(self.config.command_executor)
            info.command.uris.extend(task.command.uris)  # fetched into the command's sandbox
            if task.command.user:  # the command executor runs as its task's user
                info.command.user = task.command.user
            command_executor = True
        else:
            info = pb.ExecutorInfo()
            info.CopyFrom(task.executor)
            info.framework_id.value = fid
            command_executor = False
        eid = info.executor_id.value
        executor = self.executors.get((fid, eid))
        if executor is None or executor.phase is ExecutorPhase.TERMINATING:
            self._container_ids += 1
            container_id = f"{eid}.{self._container_ids}.{self.rng.getrandbits(32):08x}"
            executor = Executor(info, fid, container_id, command_executor)
            self.executors[(fid, eid)] = executor
            self.containers[container_id] = (fid, eid)
            if checkpoint:
                self.emit(CheckpointExecutor(fid, info, container_id, command_executor, ""))
            self.emit(LaunchExecutor(container_id, fid, info, self._executor_environment(msg.framework, info, container_id),
                                     checkpoint, self._limits(executor, [task]),
                                     info.command.user or msg.framework.user, command_executor))
            self.set_timer(AgentTimer.EXECUTOR_REGISTRATION, now + self.config.executor_registration_timeout, (fid, eid))
        volumes = persistent_volumes(list(task.resources) + list(info.resources))
        if volumes:
            self.emit(LinkVolumes(executor.container_id, volumes))
        if checkpoint:
            self.emit(CheckpointTask(fid, eid, executor.container_id, task))
        self.tasks[(fid, tid)] = Task(task, fid, eid, container_id=executor.container_id, checkpoint=checkpoint)
        executor.task_ids.add(tid)
        # the task's run (its sandbox), for the master: once here, never in its updates
        self.send_row(self.master, _TASK_CONTAINERS, (fid, tid, eid, executor.container_id))
        if executor.phase is ExecutorPhase.REGISTERED:
            self.send(executor.transport, pb.RunExecutorTask(framework=msg.framework, task=task))
        else:
            executor.queued.append(task)

    @on(T.RECONCILE_TASKS)
    def _reconcile_tasks(self, sender: str, msg: pb.ReconcileTasks, now: float) -> None:
        """The master has tasks for us that our reregistration report lacked. A launch
        that crossed the report has arrived by now (same ordered connection): such a task
        we have, and its own updates speak for it; any other is answered TASK_DROPPED,
        reliably (it is retried until acknowledged, and then forgotten)."""
        if not self._from_master(sender) or self.connection is not Connection.REGISTERED:
            return
        fid = msg.framework_id.value
        for task_id in msg.task_ids:
            tid = canonical_task_id(task_id.value)
            if (fid, tid) in self.tasks:
                continue
            info = pb.TaskInfo(name=tid, task_id=task_id, agent_id=pb.AgentID(value=self.agent_id or ""))
            self.tasks[(fid, tid)] = Task(info, fid, "")  # holds the stream of the update below
            self._agent_update(fid, tid, "", for_framework(msg.framework, pb.TASK_DROPPED),
                               Reason.REASON_RECONCILIATION, "the agent does not know this task", now)

    @on(T.CHECKPOINT_RESOURCES)
    def _checkpoint_resources(self, sender: str, msg: pb.CheckpointResources, now: float) -> None:
        """Operations changed this agent's resources (reservations, volumes): keep them,
        so they survive a restart and are reported when the agent reregisters."""
        if not self._from_master(sender):
            return
        before = {v[:2] for v in persistent_volumes(self.info.resources)}
        after = {v[:2] for v in persistent_volumes(msg.resources)}
        del self.info.resources[:]
        self.info.resources.extend(msg.resources)
        self._agent_checkpointed = True
        self.emit(CheckpointAgent(_copy(self.info)))
        if before != after:
            self.emit(UpdateVolumes(sorted(after - before), sorted(before - after)))

    def _executor_environment(self, framework: pb.FrameworkInfo, info: pb.ExecutorInfo, container_id: str) -> dict[str, str]:
        return {
            "CORRAL_FRAMEWORK_ID": framework.id.value,
            "CORRAL_EXECUTOR_ID": info.executor_id.value,
            "CORRAL_CONTAINER_ID": container_id,
            "CORRAL_AGENT_ID": self.agent_id or "",
            "CORRAL_AGENT_ENDPOINT": self.transport,
            "CORRAL_CHECKPOINT": "1" if framework.checkpoint else "0",
            "CORRAL_RECOVERY_TIMEOUT": str(self.config.executor_recovery_timeout),
            "CORRAL_STATUS_UPDATE_BACKOFF": str(self.config.status_update_backoff),
        }

    @on(T.KILL_TASK)
    def _kill_task(self, sender: str, msg: pb.KillTask, now: float) -> None:
        if not self._from_master(sender):
            return
        fid, tid = msg.framework_id.value, msg.task_id.value
        task = self.tasks.get((fid, tid))
        if task is None:
            self._agent_update(fid, tid, "", pb.TASK_LOST, Reason.REASON_RECONCILIATION,
                               "cannot kill an unknown task", now, known=False)
            return
        if is_terminal(task.state):
            return
        executor = self.executors.get((fid, task.executor_id))
        if executor is None:
            return
        queued = [t for t in executor.queued if t.task_id.value == tid]
        if queued or executor.phase is not ExecutorPhase.REGISTERED:
            executor.queued = [t for t in executor.queued if t.task_id.value != tid]
            self._agent_update(fid, tid, executor.id, pb.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                               "killed before the executor received it", now)
            if not self._live_tasks(executor):
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, 0.0))
            return
        kill = pb.KillExecutorTask(framework_id=msg.framework_id, task_id=msg.task_id)
        if msg.HasField("kill_policy"):
            kill.kill_policy.CopyFrom(msg.kill_policy)
        self.send(executor.transport, kill)

    def _live_tasks(self, executor: Executor) -> list[Task]:
        return [
            t for tid in executor.task_ids
            if (t := self.tasks.get((executor.framework_id, tid))) is not None and not is_terminal(t.state)
        ]

    @on(T.SHUTDOWN_FRAMEWORK)
    def _shutdown_framework(self, sender: str, msg: pb.ShutdownFramework, now: float) -> None:
        if not self._from_master(sender):
            return
        fid = msg.framework_id.value
        for (efid, _), executor in list(self.executors.items()):
            if efid == fid and executor.phase is not ExecutorPhase.TERMINATING:
                if executor.transport:
                    self.send(executor.transport, pb.ShutdownExecutor(framework_id=msg.framework_id,
                                                                      executor_id=executor.info.executor_id))
                executor.phase = ExecutorPhase.TERMINATING
                self.emit(KillContainer(executor.container_id, self.config.shutdown_grace_period))
        for tid in list(self.tasks.by_framework.get(fid, ())):
            del self.tasks[(fid, tid)]
            self.updates.remove((fid, tid))
        for container_id in [c for c, run in self._ended_runs.items() if run[0] == fid]:
            del self._ended_runs[container_id]  # DiscardFramework takes their checkpoints
        info = self.frameworks.pop(fid, None)
        if info is not None and info.checkpoint:
            self.emit(DiscardFramework(fid))
