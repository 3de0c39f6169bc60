"""The master engine's operator calls (the daemon's operator endpoints only call them):
role weights and quota limits (kept in the registry), marking an agent gone, and
reserving or unreserving an agent's resources outside any offer.
Each returns "" or what is wrong, and changes nothing when something is. Each is
authorised for the caller's `principal` (the HTTP credentials'; None without
authentication) by the ACLs first: `Denied` when they refuse it."""
from __future__ import annotations

from typing import Any

from corral.engines.master import operations
from corral.engines.master.allocator import AllocatorError, validate_role, validate_weight
from corral.engines.master.records import AgentState
from corral.engines.master.registry import AgentRecordState, RecordAgent, RecordQuota, RecordWeight
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.security.acls import Action

Reason = pb.TaskStatus.Reason


class OperatorMixin:
    """The master engine's operator calls (a part of `MasterEngine`)."""

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
        self.gone.add(agent_id)
        self.emit(RecordAgent(agent_id, None, AgentRecordState.GONE, now))
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

