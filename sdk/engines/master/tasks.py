"""The master engine's launches and kills: an Accept's offer operations and task launches
(each validated, resources taken from the offers), the executor run each launched task
went to (its sandbox, from its agent), and kill requests relayed to agents."""
from __future__ import annotations

import logging
from typing import Any

from corral._core.decoding import canonical_task_id
from corral.engines.authorization import Denied, denial
from corral.engines.base import on
from corral.engines.common import is_terminal
from corral.engines.master import operations
from corral.engines.master.operator import OperatorEvent
from corral.engines.master.records import Agent, AgentState, Framework, Offer, Task
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb
from corral.resources import ResourceError, Resources
from corral.security.acls import Action

Reason = pb.TaskStatus.Reason
log = logging.getLogger(__name__)


def task_user(framework: pb.FrameworkInfo, task: pb.TaskInfo) -> str:
    """The user a task runs as: its command's, else its executor's command's, else its
    framework's (as Mesos)."""
    if task.HasField("command") and task.command.user:
        return task.command.user
    if task.HasField("executor") and task.executor.command.user:
        return task.executor.command.user
    return framework.user


class TasksMixin:
    """The master engine's handling of launches and kills (a part of `MasterEngine`)."""

    @on(T.ACCEPT)
    def _accept(self, sender: str, msg: pb.Accept, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        launches = [t for op in msg.operations if op.type == pb.Offer.Operation.LAUNCH for t in op.launch.task_infos]
        offers, error = self._take_offers(fw, msg.offer_ids)
        if error:
            for task in launches:
                self._reply_status(fw, task.task_id.value, pb.TASK_DROPPED, Reason.REASON_INVALID_OFFERS, error, now,
                                   agent_id=task.agent_id.value)
            return
        agent = self.agents[offers[0].agent_id]
        role = offers[0].role
        remaining = Resources()
        for offer in offers:
            remaining = remaining + offer.resources
        seen: set[str] = set()
        changed = False
        for op in msg.operations:
            if op.type != pb.Offer.Operation.LAUNCH:
                try:
                    operations.authorize(op, fw.principal, self.authorizer)
                    change = operations.conversion(op, role, agent.total)
                    remaining = operations.apply(remaining, change, agent.used)
                except (operations.OperationError, Denied) as exc:
                    self.counters["invalid_operations"] += 1
                    self.send(fw.transport, pb.Error(message=f"{pb.Offer.Operation.Type.Name(op.type)} rejected: {exc}"))
                    continue
                agent.total = agent.total - change.consumed + change.converted
                self.allocator.update_allocation(fw.id, agent.id, change.consumed, change.converted, role)
                changed = True
                continue
            for task_info in op.launch.task_infos:
                problem, resources = self._validate_task(fw, agent, task_info, remaining, seen)
                tid = task_info.task_id.value
                seen.add(tid)
                if not problem and not self.authorizer.allows(Action.RUN_TASKS, fw.principal, task_user(fw.info, task_info)):
                    self.counters["invalid_tasks"] += 1
                    self._reply_status(fw, tid, pb.TASK_ERROR, Reason.REASON_TASK_UNAUTHORIZED,
                                       denial(Action.RUN_TASKS, fw.principal, task_user(fw.info, task_info)), now,
                                       agent_id=agent.id)
                    continue
                if problem:
                    self.counters["invalid_tasks"] += 1
                    self._reply_status(fw, tid, pb.TASK_ERROR, Reason.REASON_TASK_INVALID, problem, now,
                                       agent_id=agent.id)
                    continue
                remaining = remaining - resources
                self._launch(fw, agent, task_info, resources, role)
        if changed:
            del agent.info.resources[:]
            agent.info.resources.extend(agent.total.to_protos())
            self.send(agent.transport, pb.CheckpointResources(agent_id=pb.AgentID(value=agent.id),
                                                              resources=agent.info.resources))
        if remaining:
            self.allocator.recover(fw.id, agent.id, remaining, refuse_seconds=msg.filters.refuse_seconds, now=now,
                                   role=role)
        self._allocate_soon(now)

    def _take_offers(self, fw: Framework, offer_ids: Any) -> tuple[list[Offer], str]:
        """Validate and consume the offers of an accept; their resources return to the
        agent's available pool, to be used by the launches that follow."""
        ids = [o.value for o in offer_ids]
        if not ids:
            return [], "no offers named"
        if len(set(ids)) != len(ids):
            return [], f"offer ids used more than once: {ids}"
        offers = []
        for oid in ids:
            offer = self.offers.get(oid)
            if offer is None:
                return [], f"offer {oid} is no longer valid"
            if offer.framework_id != fw.id:
                return [], f"offer {oid} belongs to another framework"
            offers.append(offer)
        if len({o.agent_id for o in offers}) != 1:
            return [], "offers from more than one agent"
        if len({o.role for o in offers}) != 1:
            return [], "offers for more than one role"
        for offer in offers:
            self._close_offer(offer)
        return offers, ""

    def _validate_task(self, fw: Framework, agent: Agent, info: pb.TaskInfo, remaining: Resources,
                       seen: set[str]) -> tuple[str, Resources]:
        tid = info.task_id.value
        if not tid:
            return "task id is empty", Resources()
        if tid in seen:
            return f"task id {tid!r} is used twice in one launch", Resources()
        existing = fw.tasks.get(tid)
        if existing is not None:  # (as Mesos: a task is known until its terminal update is acknowledged)
            if not is_terminal(existing.state):
                return f"task id {tid!r} is already in use by a live task", Resources()
            return (f"task id {tid!r} is still in use: the terminal update of the task that had it "
                    f"is not acknowledged yet"), Resources()
        if info.agent_id.value != agent.id:
            return f"task {tid!r} names agent {info.agent_id.value!r} but its offers are on {agent.id!r}", Resources()
        if info.HasField("executor") == info.HasField("command"):
            return f"task {tid!r} needs exactly one of 'command' and 'executor'", Resources()
        try:
            resources = Resources.from_protos(info.resources)
            if info.HasField("executor"):
                resources = resources + Resources.from_protos(info.executor.resources)
        except ResourceError as exc:
            return f"task {tid!r}: {exc}", Resources()
        if not resources:
            return f"task {tid!r} uses no resources", Resources()
        if not remaining.contains(resources):
            return f"task {tid!r} needs {resources} but the offers have only {remaining}", Resources()
        return "", resources

    def _launch(self, fw: Framework, agent: Agent, info: pb.TaskInfo, resources: Resources, role: str) -> None:
        tid = canonical_task_id(info.task_id.value)
        task = Task(tid, info.name, fw.id, resources, agent_id=agent.id, role=role)
        fw.tasks[task.id] = task
        agent.tasks[(fw.id, task.id)] = task
        agent.used = agent.used + resources
        self.counters["tasks_launched"] += 1
        self._tell(OperatorEvent.TASK_ADDED, task)
        self.send(agent.transport, pb.RunTask(framework=fw.info, task=info, framework_transport=fw.transport))

    @on(T.TASK_CONTAINERS)
    def _task_containers(self, sender: str, msg: pb.TaskContainers, now: float) -> None:
        """The agent put tasks of ours in executor runs: each task's sandbox is its run's."""
        agent = self.agents.get(self.agents_by_transport.get(sender, ""))
        if agent is None:
            self.counters["messages_from_unknown"] += 1
            return
        columns = (msg.framework_ids, msg.task_ids, msg.executor_ids, msg.container_ids)
        if len({len(c) for c in columns}) != 1:
            log.warning("TaskContainers from agent %s dropped: its columns differ in length (%s)", agent.id,
                        ", ".join(str(len(c)) for c in columns))
            return
        tasks = agent.tasks
        for fid, tid, eid, cid in zip(*columns):
            task = tasks.get((fid, canonical_task_id(tid)))
            if task is not None:  # (else it is gone already: killed, or its framework removed)
                task.executor_id = eid
                task.container_id = cid

    @on(T.KILL)
    def _kill(self, sender: str, msg: pb.Kill, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        tid = msg.task_id.value
        if not self.authorizer.allows(Action.KILL_TASKS, self.principal, fw.principal):
            self.send(fw.transport, pb.Error(message=f"kill of task {tid!r} rejected: "
                                                     + denial(Action.KILL_TASKS, self.principal, fw.principal)))
            return
        task = fw.tasks.get(tid)
        if task is None:
            self._reply_status(fw, tid, pb.TASK_LOST, Reason.REASON_RECONCILIATION,
                               "attempted to kill an unknown task", now, agent_id=msg.agent_id.value or None)
            return
        agent = self.agents.get(task.agent_id)
        if agent is None:
            return  # best effort: the framework retries; reconciliation tells the truth
        kill = pb.KillTask(framework_id=pb.FrameworkID(value=fw.id), task_id=msg.task_id)
        if msg.HasField("kill_policy"):
            kill.kill_policy.CopyFrom(msg.kill_policy)
        self._kill_on(agent, kill)

    def _kill_on(self, agent: Agent, kill: pb.KillTask) -> None:
        """Send `kill` to the task's agent now, or when the agent is back."""
        if agent.state is not AgentState.REGISTERED:
            agent.pending_kills.add((kill.framework_id.value, kill.task_id.value))
        else:
            self.send(agent.transport, kill)
