"""The agent's registration with the master: (re)registering with backoff, the report of
its tasks and unacknowledged updates, the master's pings, and losing the master."""
from __future__ import annotations

import logging

from corral.engines.agent.checkpoints import CheckpointAgent
from corral.engines.agent.records import AgentTimer, Connection
from corral.engines.base import MasterLost, on, on_timer
from corral.engines.status import update_of
from corral.net.protocol import MessageType as T
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb
from corral.security.links import MASTER_PRINCIPAL

log = logging.getLogger(__name__)


#: missed pings (at the master's announced interval) before the agent looks for a master
PINGS_BEFORE_MASTER_LOST = 5


class RegistrationMixin:
    """The agent engine's registration and master liveness (a part of `AgentEngine`)."""

    def connect(self, master: str, now: float) -> None:
        """Register (or reregister) with the master at transport address `master`."""
        if self.master and self.master != master:
            self.counters.setdefault("master_changes", 0)
            self.counters["master_changes"] += 1
            self._held_launches.clear()
        self.master = master
        self.connection = Connection.REGISTERING
        self.updates.pause()
        self._registration = self._registration.policy.retry()
        if not self.recovering:  # else: once recovered executors are back (_finish_recovery)
            self.set_timer(AgentTimer.REGISTER, self._registration.next_deadline(now))

    @on_timer(AgentTimer.REGISTER)
    def _registration_attempt(self, _subject: None, now: float) -> None:
        if self.connection is Connection.REGISTERING:
            self._send_registration()
            self.set_timer(AgentTimer.REGISTER, self._registration.next_deadline(now))

    def _send_registration(self) -> None:
        info = pb.AgentInfo()
        info.CopyFrom(self.info)
        info.transport = self.transport
        if self.agent_id is None:
            self.send(self.master, pb.RegisterAgent(agent=info, version=_version(), session=self.session))
            return
        info.id.value = self.agent_id
        msg = pb.ReregisterAgent(agent=info, version=_version())
        for (fid, tid), task in self.tasks.items():
            report = msg.tasks.add(task=task.info, state=task.state)
            report.framework_id.value = fid
            if task.container_id:
                report.executor_id.value = task.executor_id
                report.container_id.value = task.container_id
            report.unacknowledged.extend(update_of(row, self.agent_id) for _, row in self.updates.pending((fid, tid)))
        for executor in self.executors.values():
            state = msg.executors.add(executor_info=executor.info)
            state.framework_id.value = executor.framework_id
        msg.frameworks.extend(self.frameworks.values())
        self.send(self.master, msg)

    def _from_master(self, sender: str) -> bool:
        """Whether a message comes from the master: from its address and, on
        authenticated links, over the master's connection (an executor naming the
        master's address is a forgery, counted)."""
        if sender != self.master:
            self.counters["messages_from_unknown"] += 1
            return False
        if self.principal is not None and self.principal != MASTER_PRINCIPAL:
            self.counters["forged_senders"] += 1
            log.warning("dropped a message naming the master's address from principal %r", self.principal)
            return False
        return True

    @on(T.AGENT_REGISTERED)
    def _registered(self, sender: str, msg: pb.AgentRegistered, now: float) -> None:
        if self._from_master(sender):
            self._become_registered(msg.agent_id.value, msg.ping_interval_seconds, now)

    @on(T.AGENT_REREGISTERED)
    def _reregistered(self, sender: str, msg: pb.AgentReregistered, now: float) -> None:
        if self._from_master(sender):
            self._become_registered(msg.agent_id.value, msg.ping_interval_seconds, now)

    def _become_registered(self, agent_id: str, ping_interval: float, now: float) -> None:
        if self.connection is Connection.REGISTERED:
            return  # a duplicate reply
        if self._agent_checkpointed and agent_id != self.agent_id:
            self.info.id.value = agent_id
            self.emit(CheckpointAgent(_copy(self.info)))
        log.info("registered with master %s as agent %s", self.master, agent_id)
        self.agent_id = agent_id
        self.info.id.value = agent_id
        self.connection = Connection.REGISTERED
        self.cancel_timer(AgentTimer.REGISTER)
        if ping_interval > 0:
            # the master gives up after 5 missed pongs; so do we, after 5 missed pings
            self.ping_timeout = ping_interval * PINGS_BEFORE_MASTER_LOST
        self.set_timer(AgentTimer.PING_TIMEOUT, now + self.ping_timeout)
        self._forward_heads(self.updates.resume(now))
        held, self._held_launches = self._held_launches, []
        for launch in held:
            if launch.task.agent_id.value == agent_id:
                self._run_task(self.master, launch, now)

    def peer_event(self, address: str, event: PeerEvent, now: float) -> None:
        if address == self.master and event is PeerEvent.DISCONNECTED and self.connection is not Connection.DISCONNECTED:
            self._master_lost(now)

    @on_timer(AgentTimer.PING_TIMEOUT)
    def _ping_timeout(self, _subject: None, now: float) -> None:
        self._master_lost(now)

    def _master_lost(self, now: float) -> None:
        log.info("lost master %s; registering again", self.master)
        self.connection = Connection.DISCONNECTED
        self.cancel_timer(AgentTimer.PING_TIMEOUT)
        self.updates.pause()
        self.emit(MasterLost())

    @on(T.PING)
    def _ping(self, sender: str, msg: pb.Ping, now: float) -> None:
        if not self._from_master(sender) or self.agent_id is None:
            return
        if self.connection is not Connection.REGISTERED:
            return
        if not msg.connected:
            # the master set us aside (our connection dropped on its side) while we think
            # we are registered: register again, which reconciles our tasks with it
            self.counters["forced_reregistrations"] += 1
            self._master_lost(now)
            return
        self.set_timer(AgentTimer.PING_TIMEOUT, now + self.ping_timeout)
        self.send(sender, pb.Pong(agent_id=pb.AgentID(value=self.agent_id)))


def _copy(info: pb.AgentInfo) -> pb.AgentInfo:
    out = pb.AgentInfo()
    out.CopyFrom(info)
    return out


def _version() -> str:
    from corral import __version__

    return __version__
