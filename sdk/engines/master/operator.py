"""The master engine's operator calls (the daemon's operator endpoints only call them):
role weights and quota limits (kept in the registry), marking an agent gone, reserving
or unreserving an agent's resources outside any offer, tearing a framework down and
killing a task. Each returns "" or what is wrong, and changes nothing when something
is; what it changes elsewhere leaves as the engine's actions (registry writes, messages).
Each is authorised for the caller's `principal` (the HTTP credentials'; None without
authentication) by the ACLs first: `Denied` when they refuse it.

And what the engine tells operators as it goes (the daemon's event stream): while
someone listens, the daemon sets `MasterEngine.operator_events` to an `OperatorEvents`
(nobody listening: None, and the engine skips them at the cost of one attribute test).
Tasks added, agents and frameworks added and removed are logged as `(OperatorEvent, the
task, agent or framework)`; updates are not logged one by one (the status path makes
many): the ids of the tasks updated are collected, and whoever tells operators reads
those tasks' states then.
"""
from __future__ import annotations

import enum
import operator
from typing import Any

from corral._core.rows import TASK_ID
from corral.engines.common import is_terminal
from corral.engines.master import operations
from corral.engines.master.allocator import AllocatorError, validate_role, validate_weight
from corral.engines.master.records import AgentState, Task
from corral.engines.master.registry import AgentRecordState, RecordAgent, RecordQuota, RecordWeight
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.security.acls import Action

Reason = pb.TaskStatus.Reason


class OperatorEvent(enum.Enum):
    TASK_ADDED = "TASK_ADDED"
    TASK_UPDATED = "TASK_UPDATED"
    AGENT_ADDED = "AGENT_ADDED"
    AGENT_REMOVED = "AGENT_REMOVED"
    FRAMEWORK_ADDED = "FRAMEWORK_ADDED"
    FRAMEWORK_REMOVED = "FRAMEWORK_REMOVED"


#: an update row's task id
_TASK_ID = operator.itemgetter(TASK_ID)


class OperatorEvents:
    """What the master engine has to tell operators since they were last told: `log`,
    the (OperatorEvent, subject) of tasks added and agents and frameworks added and
    removed, in order; `updated`, the ids of the tasks that had updates (of any
    framework: a task id names a task within its framework only)."""

    __slots__ = ("log", "updated")

    def __init__(self) -> None:
        self.log: list[tuple[OperatorEvent, Any]] = []
        self.updated: set[str] = set()

    def rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Updates (status-path rows) of tasks; one set update, no object made per row."""
        self.updated.update(map(_TASK_ID, rows))


class OperatorMixin:
    """The master engine's operator calls (a part of `MasterEngine`)."""

    def _tell(self, event: OperatorEvent, subject: Any) -> None:
        """An event for operators, if any listen."""
        if self.operator_events is not None:
            self.operator_events.log.append((event, subject))

    def set_weights(self, weights: list[tuple[str, Any]], now: float, principal: str | None = None) -> str:
        """Set the weights of roles, (role, weight) each: every one is checked before any
        is set; each is kept in the registry (`RecordWeight`) and given to the allocator."""
        try:
            checked = [(validate_role(role), weight) for role, weight in weights]
            checked = [(role, validate_weight(role, weight)) for role, weight in checked]
        except AllocatorError as exc:
            return str(exc)
        for role, _weight in checked:
            self.authorizer.check(Action.UPDATE_WEIGHTS, principal, role)
        for role, weight in checked:
            self.emit(RecordWeight(role, weight))
            self.allocator.set_weight(role, weight)
            self.weights[role] = weight
        return ""

    def set_quota(self, role: str, quota: Resources | None, now: float, principal: str | None = None) -> str:
        """Limit a role's allocation to `quota` (None: no limit), kept in the registry
        (`RecordQuota`)."""
        self.authorizer.check(Action.UPDATE_QUOTAS, principal, role)
        try:
            self.allocator.set_quota(role, quota)  # (checks the role and the resources)
        except AllocatorError as exc:
            return str(exc)
        self.emit(RecordQuota(role, quota))
        if quota is None:
            self.quotas.pop(role, None)
        else:
            self.quotas[role] = quota
        return ""

    def mark_gone(self, agent_id: str, now: float, principal: str | None = None) -> str:
        """An operator says the agent will not come back: its tasks are reported
        GONE_BY_OPERATOR and it may not reregister. '' or the reason it cannot be done."""
        self.authorizer.check(Action.MARK_AGENTS_GONE, principal, agent_id)
        agent = self.agents.get(agent_id)
        if agent is not None:
            self._remove_agent(agent, pb.TASK_GONE_BY_OPERATOR, Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
                               f"agent {agent_id} was marked gone by an operator", now)
        elif agent_id not in self.recovering and agent_id not in self.unreachable_since:
            return f"unknown agent {agent_id!r}" if agent_id not in self.gone else ""
        self.recovering.pop(agent_id, None)
        self.unreachable_since.pop(agent_id, None)
        self._recovery.principals.pop(agent_id, None)
        self.gone.add(agent_id)
        self.emit(RecordAgent(agent_id, None, AgentRecordState.GONE, now))
        self._answer_deferred(agent_id, now)
        return ""

    def operator_reservation(self, agent_id: str, resources: list[pb.Resource], unreserve: bool, now: float,
                             principal: str | None = None) -> str:
        """Reserve (or unreserve) resources of an agent for the role they name, outside
        any offer: what is offered on the agent is rescinded first; the resources must be
        unallocated. '' or the reason it cannot be done."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.REGISTERED:
            return f"agent {agent_id!r} is not registered"
        if not resources or not resources[0].reservations:
            return "name resources with a reservation (a role)"
        role = resources[0].reservations[-1].role
        Op = pb.Offer.Operation
        op = (Op(type=Op.UNRESERVE, unreserve=Op.Unreserve(resources=resources)) if unreserve
              else Op(type=Op.RESERVE, reserve=Op.Reserve(resources=resources)))
        try:
            operations.authorize(op, principal, self.authorizer)
            change = operations.conversion(op, role, agent.total)
        except operations.OperationError as exc:
            return str(exc)
        self._rescind_offers_on(agent, now)
        available = self.allocator.available(agent_id)
        if not available.contains(change.consumed):
            return f"agent {agent_id} has not {change.consumed} unallocated (it has {available})"
        agent.total = agent.total - change.consumed + change.converted
        self.allocator.update_agent(agent_id, agent.total)
        del agent.info.resources[:]
        agent.info.resources.extend(agent.total.to_protos())
        self.send(agent.transport, pb.CheckpointResources(agent_id=pb.AgentID(value=agent_id),
                                                          resources=agent.info.resources))
        self._allocate_soon(now)
        return ""

    def operator_teardown(self, framework_id: str, now: float, principal: str | None = None) -> str:
        """An operator removes a framework (as if its scheduler had torn it down): its
        agents kill its tasks. '' or the reason it cannot be done."""
        fw = self.frameworks.get(framework_id)
        if fw is None:
            return f"unknown framework {framework_id!r}"
        self.authorizer.check(Action.TEARDOWN_FRAMEWORKS, principal, fw.principal)
        if fw.connected:
            self.send(fw.transport, pb.Error(message=f"framework {framework_id} was torn down by an operator",
                                             fatal=True))
        self._remove_framework(fw, now)
        return ""

    def operator_kill(self, framework_id: str, task_id: str, now: float, principal: str | None = None) -> str:
        """An operator kills a task, as its framework would (the framework is told how it
        ends by the task's updates). '' or the reason it cannot be done."""
        fw = self.frameworks.get(framework_id)
        task = fw.tasks.get(task_id) if fw is not None else None
        if task is None or is_terminal(task.state):
            return f"no live task {task_id!r} of framework {framework_id!r}"
        self.authorizer.check(Action.KILL_TASKS, principal, fw.principal)
        agent = self.agents.get(task.agent_id)
        if agent is None:
            return f"the agent of task {task_id!r} is gone"
        self._kill_on(agent, pb.KillTask(framework_id=pb.FrameworkID(value=fw.id), task_id=pb.TaskID(value=task_id)))
        return ""

    def find_task(self, framework_id: str | None, task_id: str) -> tuple[Task | None, str]:
        """(task, '') or (None, why): the task of that id (of that framework, or of any
        when None), active or completed, of a framework active or completed; the latest
        when its framework has had several of that id."""
        found = []
        for fw in (*self.frameworks.values(), *self.completed_frameworks):
            if framework_id and fw.id != framework_id:
                continue
            task = fw.tasks.get(task_id) or next((t for t in reversed(fw.completed) if t.id == task_id), None)
            if task is not None:
                found.append(task)
        if not found:
            where = f" of framework {framework_id!r}" if framework_id else ""
            return None, f"no task {task_id!r}{where}"
        if len({t.framework_id for t in found}) > 1:
            names = ", ".join(sorted({t.framework_id for t in found}))
            return None, f"task id {task_id!r} is used by several frameworks ({names}): name one with framework_id"
        return found[0], ""
