"""The master engine's agents: registration, reregistration (merging the agent's report of
its tasks with the master's view), removal, and liveness (pings and unreachability)."""
from __future__ import annotations

import logging

from corral._core.decoding import canonical_task_id
from corral.engines.authorization import denial
from corral.engines.base import on, on_timer
from corral.engines.common import is_terminal
from corral.engines.master.allocator import AllocatorError
from corral.engines.master.operator import OperatorEvent
from corral.engines.master.records import Agent, AgentState, MasterTimer, Task
from corral.engines.master.registry import AgentRecordState, ForgetAgent, RecordAgent
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb
from corral.resources import ResourceError, Resources
from corral.security.acls import Action

Reason = pb.TaskStatus.Reason
log = logging.getLogger(__name__)


class AgentsMixin:
    """The master engine's handling of agents (a part of `MasterEngine`)."""

    def _agent_at(self, sender: str, agent_id: str) -> bool:
        """Whether `sender` is agent `agent_id`'s address and this message comes over its
        principal's connection."""
        agent = self.agents.get(agent_id)
        return agent is not None and agent.transport == sender and self._speaks_for(agent, sender)

    def _may_register_agent(self, sender: str, info: pb.AgentInfo) -> bool:
        """The ACLs' register_agents, for the agent's hostname; a refusal is a fatal Error."""
        if self.authorizer.allows(Action.REGISTER_AGENTS, self.principal, info.hostname):
            return True
        self.send(sender, pb.Error(message="agent rejected: " + denial(Action.REGISTER_AGENTS, self.principal,
                                                                         info.hostname), fatal=True))
        return False

    @on(T.REGISTER_AGENT)
    def _register_agent(self, sender: str, msg: pb.RegisterAgent, now: float) -> None:
        if not self._claim(sender):
            return
        known = self.agents_by_transport.get(sender)
        existing = None if known is None else self.agents.get(known)
        if existing is not None and existing.session != msg.session:
            # a fresh agent (restarted without its checkpoints, or after a reboot) at the
            # address of one we know: the old one and its tasks are gone
            self._remove_agent(existing, pb.TASK_GONE, Reason.REASON_AGENT_RESTARTED,
                               f"agent {existing.id} was replaced by a new agent at {sender}", now)
            existing = None
        if existing is not None:
            # our reply was lost or is late: answer again. Launches are not resent: each
            # was sent once, after a reply, and the agent runs those that reach it before
            # its first reply once that reply arrives (a resent launch could reach it after
            # the task ended and run the task a second time)
            agent = existing
        else:
            if not self._may_register_agent(sender, msg.agent):
                return
            try:
                total = Resources.from_protos(msg.agent.resources)
            except ResourceError as exc:
                self.send(sender, pb.Error(message=f"agent resources rejected: {exc}", fatal=True))
                return
            agent_id = self._new_id("S")
            info = pb.AgentInfo()
            info.CopyFrom(msg.agent)
            info.id.value = agent_id
            agent = Agent(agent_id, info, sender, total, registered_at=now, session=msg.session,
                          principal=self.principal)
            self.agents[agent_id] = agent
            self.agents_by_transport[sender] = agent_id
            self.allocator.add_agent(agent_id, total)
            log.info("agent %s registered from %s with %s", agent_id, sender, total)
            self.emit(RecordAgent(agent_id, info, AgentRecordState.ADMITTED, now, self.principal))
            self._tell(OperatorEvent.AGENT_ADDED, agent)
            self._allocate_soon(now)
        self.send(
            sender,
            pb.AgentRegistered(
                agent_id=pb.AgentID(value=agent.id),
                master_info=self.info,
                ping_interval_seconds=self.config.ping_interval,
            ),
        )

    @on(T.REREGISTER_AGENT)
    def _reregister_agent(self, sender: str, msg: pb.ReregisterAgent, now: float) -> None:
        agent_id = msg.agent.id.value
        if not agent_id:
            self.send(sender, pb.Error(message="ReregisterAgent without an agent id: register instead", fatal=True))
            return
        if agent_id in self.gone:
            self.send(sender, pb.Error(message=f"agent {agent_id} was marked gone by an operator: start it afresh",
                                       fatal=True))
            return
        if not self._claim(sender):
            return
        agent = self.agents.get(agent_id)
        # (after a restart or a failover, the registry says who admitted the agent)
        admitted_by = agent.principal if agent is not None else self._recovery.principals.get(agent_id)
        if admitted_by is not None and self.principal is not None and admitted_by != self.principal:
            self.authorizer.count(Action.REGISTER_AGENTS)
            log.warning("refused agent %s reregistering from %s as principal %r: it was admitted by principal %r",
                        agent_id, sender, self.principal, admitted_by)
            self.send(sender, pb.Error(message=f"agent {agent_id} was registered by principal {admitted_by!r}: "
                                               f"principal {self.principal!r} may not reregister it", fatal=True))
            return
        if agent is None:
            if not self._may_register_agent(sender, msg.agent):
                return
            try:
                total = Resources.from_protos(msg.agent.resources)
            except ResourceError as exc:
                self.send(sender, pb.Error(message=f"agent resources rejected: {exc}", fatal=True))
                return
            info = pb.AgentInfo()
            info.CopyFrom(msg.agent)
            agent = Agent(agent_id, info, sender, total, registered_at=now, principal=self.principal)
            self.agents[agent_id] = agent
            self.allocator.add_agent(agent_id, total)
            self._tell(OperatorEvent.AGENT_ADDED, agent)
        else:
            self.agents_by_transport.pop(agent.transport, None)
            agent.transport = sender
            agent.principal = self.principal
        returning = agent.state is AgentState.UNREACHABLE or agent_id in self.unreachable_since
        self.recovering.pop(agent_id, None)
        self.unreachable_since.pop(agent_id, None)
        self._recovery.principals.pop(agent_id, None)
        self.emit(RecordAgent(agent_id, agent.info, AgentRecordState.ADMITTED, now, agent.principal))
        if agent.state is not AgentState.REGISTERED:
            self.allocator.activate_agent(agent_id)
        agent.state = AgentState.REGISTERED
        self.agents_by_transport[sender] = agent_id
        agent.missed_pongs = 0
        unreported = self._reconcile_agent(agent, msg, now)
        log.info("agent %s reregistered from %s with %d task(s)%s", agent_id, sender, len(msg.tasks),
                 " after being unreachable" if returning else "")
        if returning:
            # frameworks were told UNREACHABLE (or LOST): tell them what the agent says now
            for (fid, tid), task in agent.tasks.items():
                fw = self.frameworks.get(task.framework_id)
                if fw is not None and not is_terminal(task.state) and tid not in unreported.get(fid, ()):
                    self._reply_status(fw, task.id, task.status_update_state, Reason.REASON_AGENT_REREGISTERED,
                                       f"agent {agent.id} reregistered", now, agent_id=agent.id)
        self.send(
            sender,
            pb.AgentReregistered(
                agent_id=pb.AgentID(value=agent_id),
                master_info=self.info,
                ping_interval_seconds=self.config.ping_interval,
            ),
        )
        for fid, tid in sorted(agent.pending_kills):
            task = agent.tasks.get((fid, tid))
            if task is not None and not is_terminal(task.state):
                self.send(sender, pb.KillTask(framework_id=pb.FrameworkID(value=fid), task_id=pb.TaskID(value=tid)))
        agent.pending_kills.clear()
        for fid, tids in sorted(unreported.items()):
            msg_out = pb.ReconcileTasks(framework_id=pb.FrameworkID(value=fid),
                                        task_ids=[pb.TaskID(value=t) for t in tids])
            fw = self.frameworks.get(fid)
            if fw is not None:
                msg_out.framework.CopyFrom(fw.info)
            self.send(sender, msg_out)
        self._answer_deferred(agent_id, now)
        self._allocate_soon(now)

    def _reconcile_agent(self, agent: Agent, msg: pb.ReregisterAgent, now: float) -> dict[str, list[str]]:
        """Merge the agent's report with our view: learn the tasks we did not know; return
        the ones we have that the report lacks, by framework, for the agent to settle
        (`ReconcileTasks`): the report may predate a launch still on its way."""
        reported: set[tuple[str, str]] = set()
        infos = {info.id.value: info for info in msg.frameworks if info.HasField("id")}
        learned: dict[tuple[str, str], list[Task]] = {}  # running tasks new to us, by (framework, role)
        for report in msg.tasks:
            fid = report.framework_id.value
            tid = canonical_task_id(report.task.task_id.value)
            reported.add((fid, tid))
            task = agent.tasks.get((fid, tid))
            if task is None:
                try:
                    resources = Resources.from_protos(report.task.resources)
                except ResourceError:
                    resources = Resources()
                fw = self.frameworks.get(fid) or self._recover_framework(fid, infos.get(fid), now)
                if fw is None:
                    continue  # its framework info names invalid roles
                task = Task(tid, report.task.name, fid, resources, agent_id=agent.id, state=report.state, role=fw.roles[0])
                if report.unacknowledged:
                    # the head of the agent's stream: its ack (from a framework that got it
                    # from an earlier master) is the one that ends the task
                    head = report.unacknowledged[0]
                    task.status_update_state = head.status.state
                    task.status_update_uuid = head.uuid
                    task.healthy = head.status.healthy if head.status.HasField("healthy") else None
                else:
                    task.status_update_state = report.state
                agent.tasks[(fid, tid)] = task
                fw.tasks[tid] = task
                self._tell(OperatorEvent.TASK_ADDED, task)
                if not is_terminal(task.state):
                    learned.setdefault((fid, task.role), []).append(task)
            else:
                self._set_latest_state(task, agent, report.state)
            if report.HasField("container_id"):  # the task's run: a failover learns it here
                task.executor_id = report.executor_id.value
                task.container_id = report.container_id.value
        for (fid, role), tasks in learned.items():
            self._hold_reported(agent, fid, role, tasks)
        unreported: dict[str, list[str]] = {}
        for (fid, tid) in agent.tasks:
            if (fid, tid) not in reported:
                unreported.setdefault(fid, []).append(tid)
        return unreported

    def _hold_reported(self, agent: Agent, fid: str, role: str, tasks: list[Task]) -> None:
        """Running tasks of `fid` in `role` that `agent` reported and we did not know: their
        resources are in use on the agent and held by the framework. One allocator call
        for them all (a failover learns every task this way); if they do not fit
        together, or claim one persistent volume twice, one task at a time, so that only
        the tasks that do not fit are refused (counted and logged)."""
        total = Resources()
        try:
            for task in tasks:
                total = total + task.resources
            used = agent.used + total
            self.allocator.add_allocation(fid, agent.id, total, role)
            agent.used = used
            return
        except (AllocatorError, ResourceError):
            pass
        for task in tasks:
            try:
                agent.used = agent.used + task.resources
                self.allocator.add_allocation(fid, agent.id, task.resources, role)
            except (AllocatorError, ResourceError) as exc:
                self.counters["allocation_conflicts"] += 1
                log.error("task %s of framework %s on agent %s: %s", task.id, fid, agent.id, exc)

    @on(T.UNREGISTER_AGENT)
    def _unregister_agent(self, sender: str, msg: pb.UnregisterAgent, now: float) -> None:
        if not self._agent_at(sender, msg.agent_id.value):
            self.counters["messages_from_unknown"] += 1
            return
        self._remove_agent(self.agents[msg.agent_id.value], pb.TASK_LOST, Reason.REASON_AGENT_REMOVED,
                           "agent shut down", now)

    def _remove_agent(self, agent: Agent, state: int, reason: int, message: str, now: float) -> None:
        log.info("agent %s removed: %s", agent.id, message)
        self._rescind_offers_on(agent, now)
        # every task goes with its agent (no update of its stream will come again); the
        # framework is told of those whose end it was not sent (the head is not terminal)
        for task in list(agent.tasks.values()):
            if is_terminal(task.status_update_state):
                self._forget_task(task)
            else:
                self._master_update(task, state, reason, message, now, forget=True)
        del self.agents[agent.id]
        self.agents_by_transport.pop(agent.transport, None)
        self.allocator.remove_agent(agent.id)
        self.emit(ForgetAgent(agent.id))
        self._tell(OperatorEvent.AGENT_REMOVED, agent)
        for fw in self.frameworks.values():
            if fw.connected:
                self.send(fw.transport, pb.Failure(agent_id=pb.AgentID(value=agent.id)))

    @on_timer(MasterTimer.PING)
    def _ping_round(self, _subject: None, now: float) -> None:
        self._ping_agents(now)
        self.set_timer(MasterTimer.PING, now + self.config.ping_interval)

    @on_timer(MasterTimer.REREGISTER_TIMEOUT)
    def _reregister_timeout(self, _subject: None, now: float) -> None:
        """After a master restart, the admitted agents that did not come back in time are
        unreachable."""
        late = list(self.recovering)
        for agent_id in late:
            self.unreachable_since[agent_id] = now
            self.emit(RecordAgent(agent_id, None, AgentRecordState.UNREACHABLE, now))
        self.recovering.clear()
        for agent_id in late:
            self._answer_deferred(agent_id, now)

    def _ping_agents(self, now: float) -> None:
        for agent in list(self.agents.values()):
            if agent.state is AgentState.UNREACHABLE:
                continue
            if agent.missed_pongs >= self.config.max_missed_pongs:
                self._mark_unreachable(agent, now)
                continue
            agent.missed_pongs += 1
            # connected=False: the agent's connection dropped on our side; it must
            # register again (it may believe itself registered)
            self.send(agent.transport, pb.Ping(connected=agent.state is AgentState.REGISTERED, master_id=self.id))

    def _mark_unreachable(self, agent: Agent, now: float) -> None:
        log.info("agent %s unreachable after %d unanswered pings", agent.id, agent.missed_pongs)
        agent.state = AgentState.UNREACHABLE
        self.unreachable_since[agent.id] = now
        self.emit(RecordAgent(agent.id, None, AgentRecordState.UNREACHABLE, now))
        self.allocator.deactivate_agent(agent.id)
        self._rescind_offers_on(agent, now)
        for task in list(agent.tasks.values()):
            if not is_terminal(task.state):
                self._master_update(task, pb.TASK_UNREACHABLE, Reason.REASON_AGENT_DISCONNECTED,
                                    f"agent {agent.id} is unreachable", now, forget=False)

    @on(T.PONG)
    def _pong(self, sender: str, msg: pb.Pong, now: float) -> None:
        if self._agent_at(sender, msg.agent_id.value):
            self.agents[msg.agent_id.value].missed_pongs = 0
