"""The master engine's frameworks: subscription (and failover to a new scheduler), teardown,
deactivation and disconnection, removal after the failover timeout, and the messages
between frameworks and executors it passes on."""
from __future__ import annotations

import logging

from corral.engines.authorization import denial
from corral.engines.base import on, on_timer
from corral.engines.common import is_terminal
from corral.engines.master.allocator import RoleError
from corral.engines.master.operator import OperatorEvent
from corral.engines.master.records import AgentState, Framework, MasterTimer
from corral.engines.master.registry import ForgetFramework, RecordFramework
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb
from corral.security.acls import Action

log = logging.getLogger(__name__)
Reason = pb.TaskStatus.Reason


class FrameworksMixin:
    """The master engine's handling of frameworks (a part of `MasterEngine`)."""

    def _framework_from(self, sender: str, framework_id: str) -> Framework | None:
        """The framework, if `sender` is its current connection. A call from elsewhere
        gets a fatal error when another connection serves the framework (that scheduler
        replaced this one), and is ignored when none does yet: calls a scheduler queued
        before a master failover can reach the new master ahead of its Subscribe (Mesos
        ignores calls of frameworks that have not subscribed, too)."""
        fw = self.frameworks.get(framework_id)
        if fw is not None and fw.transport == sender:
            return fw if fw.principal is self.principal or self._speaks_for(fw, sender) else None
        self.counters["messages_from_unknown"] += 1
        if fw is None:
            self.send(sender, pb.Error(message=f"unknown framework {framework_id!r}"))
        elif fw.connected:
            self.send(sender, pb.Error(message=f"framework {framework_id!r} is served from another connection", fatal=True))
        return None

    @on(T.SUBSCRIBE)
    def _subscribe(self, sender: str, msg: pb.Subscribe, now: float) -> None:
        transport = msg.transport or sender
        if transport != sender:
            # every call and answer goes by the connection it came from: a framework
            # served at another address could never be answered, nor call us
            self.counters["messages_from_unknown"] += 1
            self.send(sender, pb.Error(message=f"Subscribe names transport {transport!r} but comes from {sender!r}",
                                       fatal=True))
            return
        if not self._claim(transport):
            return
        info = pb.FrameworkInfo()
        info.CopyFrom(msg.framework_info)
        if not self._may_subscribe(info, transport):
            return
        retry = False
        if info.HasField("id") and info.id.value:
            fid = info.id.value
            fw = self.frameworks.get(fid)
            if fw is None:
                # A framework we do not know (e.g. after a master failover): adopt it.
                fw = self._add_framework(fid, info, transport, sender, now)
                if fw is None:
                    return
            elif fw.principal is not None and fw.principal != self.principal:
                self.authorizer.count(Action.REGISTER_FRAMEWORKS)
                self.send(transport, pb.Error(message=f"framework {fid} was subscribed by principal {fw.principal!r}: "
                                                      f"principal {self.principal!r} may not subscribe as it",
                                              fatal=True))
                return
            else:
                retry = fw.answered(transport, msg.session)
                if fw.transport and fw.transport != transport:
                    self.send(fw.transport, pb.Error(message="framework failed over: another scheduler subscribed with this id", fatal=True))
                    log.info("framework %s failed over from %s to %s", fid, fw.transport, transport)
                fw.info = info
                fw.transport = transport
                fw.principal = self.principal
            reregistered = True
        else:
            # a retried subscribe from the same, still unanswered, connection gets the same
            # id (also when the connection dropped meanwhile and the framework was set aside)
            existing = next((f for f in self.frameworks.values() if f.transport == transport), None)
            if existing is not None:
                fw = existing
                retry = fw.answered(transport, msg.session)
            else:
                fid = self._new_id("")
                info.id.value = fid
                fw = self._add_framework(fid, info, transport, sender, now)
                if fw is None:
                    return
            reregistered = False
        if not fw.connected:
            self.allocator.activate_framework(fw.id)
            fw.connected = True
        log.info("framework %s (%s) %s at %s", fw.id, info.name or "unnamed",
                 "resubscribed" if reregistered else "subscribed", transport)
        self.cancel_timer(MasterTimer.FAILOVER, fw.id)
        fw.info.id.value = fw.id
        fw.session = msg.session
        if not retry:
            # a new attempt ignores the offers made before the Subscribed it waits for
            self._rescind_offers_of(fw, now)
            # kept before it is answered: a master elected next keeps its failover timer
            recorded = pb.FrameworkInfo()
            recorded.CopyFrom(fw.info)
            self.emit(RecordFramework(fw.id, recorded))
        self.send(
            transport,
            pb.Subscribed(
                framework_id=pb.FrameworkID(value=fw.id),
                master_info=self.info,
                reregistered=reregistered,
                session=msg.session,
            ),
        )
        self._allocate_soon(now)

    def _may_subscribe(self, info: pb.FrameworkInfo, transport: str) -> bool:
        """Whether this message's principal may subscribe the framework `info`
        describes: the principal the FrameworkInfo names (filled in when empty) must be
        the authenticated one, and the ACLs must let it register in each of its roles.
        A refusal is a fatal Error naming the principal, the action and the role."""
        principal = self.principal
        if principal is not None:
            if info.principal and info.principal != principal:
                self.authorizer.count(Action.REGISTER_FRAMEWORKS)
                self.send(transport, pb.Error(message=f"framework rejected: its FrameworkInfo names principal "
                                                      f"{info.principal!r} but it authenticated as {principal!r}",
                                              fatal=True))
                return False
            info.principal = principal
        for role in (info.roles or [info.role or "*"]):
            if not self.authorizer.allows(Action.REGISTER_FRAMEWORKS, principal, role):
                self.send(transport, pb.Error(message="framework rejected: " + denial(
                    Action.REGISTER_FRAMEWORKS, principal, role), fatal=True))
                return False
        return True

    def _add_framework(self, fid: str, info: pb.FrameworkInfo, transport: str, sender: str, now: float,
                       *, connected: bool = True) -> Framework | None:
        """Register a framework with the registry and the allocator, bound to this
        message's principal; None (and the sender told) when its roles are not valid."""
        fw = Framework(fid, info, transport, connected=connected, registered_at=now,
                       principal=self.principal if connected else (info.principal or None))
        try:
            self.allocator.add_framework(fid, fw.roles, active=connected)
        except RoleError as exc:
            self.send(sender, pb.Error(message=f"framework rejected: {exc}", fatal=True))
            return None
        self.frameworks[fid] = fw
        self._tell(OperatorEvent.FRAMEWORK_ADDED, fw)
        return fw

    def _recover_framework(self, fid: str, info: pb.FrameworkInfo | None, now: float) -> Framework | None:
        """A framework known from the registry or only from a reregistering agent's
        report (after a master restart or failover): kept disconnected until its
        scheduler subscribes again, and removed if it does not within its failover
        timeout, counted from `now`, but never before `framework_reregister_timeout`
        (its scheduler has to find this master first)."""
        if info is None:
            info = pb.FrameworkInfo(user="", name="", id=pb.FrameworkID(value=fid))
        fw = self._add_framework(fid, info, "", "", now, connected=False)
        if fw is not None:
            wait = max(info.failover_timeout, self.config.framework_reregister_timeout)
            self.set_timer(MasterTimer.FAILOVER, now + wait, fid)
        return fw

    @on(T.TEARDOWN)
    def _teardown(self, sender: str, msg: pb.Teardown, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None:
            self._remove_framework(fw, now)

    @on(T.DEACTIVATE)
    def _deactivate(self, sender: str, msg: pb.Deactivate, now: float) -> None:
        """The scheduler stopped with failover: keep its tasks for failover_timeout."""
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is not None:
            self._disconnect_framework(fw, now)

    def _disconnect_framework(self, fw: Framework, now: float) -> None:
        log.info("framework %s disconnected; removed in %gs unless it resubscribes", fw.id, fw.info.failover_timeout)
        fw.connected = False
        self._rescind_offers_of(fw, now)
        self.allocator.deactivate_framework(fw.id)
        self.set_timer(MasterTimer.FAILOVER, now + fw.info.failover_timeout, fw.id)

    @on_timer(MasterTimer.FAILOVER)
    def _failover_timeout(self, framework_id: str, now: float) -> None:
        fw = self.frameworks.get(framework_id)
        if fw is not None and not fw.connected:
            self._remove_framework(fw, now)

    def _remove_framework(self, fw: Framework, now: float) -> None:
        """The framework is gone: its agents shut its executors down; it and its tasks
        are kept as completed, those still running as TASK_KILLED (as Mesos does)."""
        log.info("framework %s removed (%d task(s) known)", fw.id, len(fw.tasks))
        self._rescind_offers_of(fw, now)
        self.cancel_timer(MasterTimer.FAILOVER, fw.id)
        for task in list(fw.tasks.values()):
            agent = self.agents.get(task.agent_id)
            if agent is not None:
                agent.tasks.pop((fw.id, task.id), None)
                if not is_terminal(task.state):
                    agent.used = agent.used - task.resources
            if not is_terminal(task.state):
                self.task_ends[pb.TASK_KILLED] = self.task_ends.get(pb.TASK_KILLED, 0) + 1
                task.state = task.status_update_state = pb.TASK_KILLED
                self._record_status(task, pb.TASK_KILLED, Reason.REASON_FRAMEWORK_REMOVED,
                                    f"framework {fw.id} was removed", now)
        fw.completed.extend(fw.tasks.values())
        del fw.completed[: -self.config.max_completed_tasks]
        fw.tasks.clear()
        for agent in self.agents.values():
            if agent.state is AgentState.REGISTERED:
                self.send(agent.transport, pb.ShutdownFramework(framework_id=pb.FrameworkID(value=fw.id)))
        del self.frameworks[fw.id]
        self.allocator.remove_framework(fw.id)
        fw.connected = False
        fw.removed_at = now
        self.completed_frameworks.append(fw)
        self._tell(OperatorEvent.FRAMEWORK_REMOVED, fw)
        self.emit(ForgetFramework(fw.id))
        self._allocate_soon(now)

    @on(T.FRAMEWORK_TO_EXECUTOR)
    def _framework_to_executor(self, sender: str, msg: pb.FrameworkToExecutor, now: float) -> None:
        fw = self._framework_from(sender, msg.framework_id.value)
        agent = self.agents.get(msg.agent_id.value)
        if fw is None or agent is None or agent.state is not AgentState.REGISTERED:
            return  # best effort
        self.send(agent.transport, msg)

    @on(T.EXECUTOR_TO_FRAMEWORK)
    def _executor_to_framework(self, sender: str, msg: pb.ExecutorToFramework, now: float) -> None:
        fw = self.frameworks.get(msg.framework_id.value)
        if fw is not None and fw.connected and self._agent_at(sender, msg.agent_id.value):
            self.send(fw.transport, msg)

    @on(T.EXITED_EXECUTOR)
    def _exited_executor(self, sender: str, msg: pb.ExitedExecutor, now: float) -> None:
        fw = self.frameworks.get(msg.framework_id.value)
        if fw is not None and fw.connected and self._agent_at(sender, msg.agent_id.value):
            self.send(fw.transport, pb.Failure(agent_id=msg.agent_id, executor_id=msg.executor_id, status=msg.status))
