"""How the master relays status updates: each task's head and latest state kept from an
agent's updates, which go on to their frameworks; the frameworks' acknowledgements go
back to the agents, and a task whose terminal update is acknowledged is forgotten. The
master's own (unacknowledged) updates are made here too, and join the task's history
(`Task.statuses`, which `_status` adds the agents' updates to). For operators: the
updates are told to `operator_events` while someone listens, and one message in
RELAY_SAMPLE_EVERY leaves a relay sample (the relay latency metric's). The per-row
loops are in `_status`."""
from __future__ import annotations

from corral._core.rows import STATUS
from corral.net import wire
from corral.engines.base import on
from corral.engines.common import TERMINAL_STATES, for_framework, is_terminal, new_status
from corral.engines.master._status import MAX_TASK_STATUSES, master_acks, master_updates
from corral.engines.master.records import Agent, Framework, Task, _AGENT_REGISTERED
from corral.engines.status import HEALTHY_OF, status_row
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb


Reason = pb.TaskStatus.Reason
SOURCE_MASTER = pb.TaskStatus.SOURCE_MASTER
#: the kind of batch updates to a framework travel in (see `Engine.send_row`)
_UPDATES = (wire.Updates,)
#: one status-update message in this many leaves a relay sample (`relay_samples`)
RELAY_SAMPLE_EVERY = 64


class StatusMixin:
    """The master engine's status-update relay (a part of `MasterEngine`)."""

    @on(T.STATUS_UPDATE)
    def _status_update(self, sender: str, msg: wire.StatusUpdateMessage, now: float) -> None:
        """Updates from an agent (`corral.net.wire` update rows): keep each task's head and
        latest state, relay them to their frameworks. A retry that crossed the
        acknowledgement (sent before the ack reached the agent) is acked again, not
        relayed: the framework has it already, also after a failover."""
        rows = msg.rows
        agent = self.agents.get(self.agents_by_transport.get(sender, ""))
        if agent is None or agent.principal is not self.principal and not self._speaks_for(agent, sender):
            self.counters["invalid_status_updates"] += len(rows)
            return
        relayed, reacks, unknown = master_updates(rows, agent, self.frameworks, HEALTHY_OF, self._set_latest_state)
        if self.operator_events is not None:
            self.operator_events.rows(rows)
        self._until_sample -= 1
        if not self._until_sample:
            self._until_sample = RELAY_SAMPLE_EVERY
            if rows:
                self.relay_samples.append((now, rows[0][STATUS]))
        frameworks = self.frameworks
        for fid, fw_rows in relayed.items():
            fw = frameworks.get(fid)
            if fw is not None and fw.connected:
                fw.status_updates += len(fw_rows)
                if len(fw_rows) == len(rows):  # every row, to one framework: the bytes as they came
                    self.send(fw.transport, wire.Updates.relay(msg))
                else:
                    self.send_rows(fw.transport, _UPDATES, fw_rows)
        if reacks:
            self.send_rows(agent.transport, agent.ack_kind, reacks)
        counters = self.counters
        counters["status_updates"] += len(rows) - unknown - len(reacks)
        if unknown:
            counters["invalid_status_updates"] += unknown
        if reacks:
            counters["acknowledged_retries"] += len(reacks)

    @on(T.ACKNOWLEDGE)
    def _acknowledge(self, sender: str, msg: wire.Acknowledge, now: float) -> None:
        """The framework acknowledged updates: tell their agents; forget each task whose
        terminal update that was. (A task we already forgot still has an agent waiting
        for the ack: it is forwarded.)"""
        fw = self._framework_from(sender, msg.framework_id)
        if fw is None:
            return
        forwarded, finished, invalid = master_acks(msg.rows, fw.id, fw.tasks, self.agents, TERMINAL_STATES)
        for task in finished:
            self._forget_task(task)
        agents = self.agents
        for agent_id, acks in forwarded.items():
            agent = agents[agent_id]
            if agent.state is _AGENT_REGISTERED:
                self.send_rows(agent.transport, agent.ack_kind, acks)
        fw.acknowledgements += len(msg.rows) - invalid
        counters = self.counters
        counters["acknowledgements"] += len(msg.rows) - invalid
        if invalid:
            counters["invalid_acknowledgements"] += invalid

    def _set_latest_state(self, task: Task, agent: Agent | None, state: int) -> None:
        """The newest state known of `task`: a terminal one frees its resources on
        `agent` (None: its agent is gone) and is counted."""
        if not is_terminal(task.state) and is_terminal(state):
            self.task_ends[state] = self.task_ends.get(state, 0) + 1
            if agent is not None:
                agent.used = agent.used - task.resources
                self.allocator.recover(task.framework_id, agent.id, task.resources, role=task.role)
        task.state = state

    def _forget_task(self, task: Task) -> None:
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.pop((task.framework_id, task.id), None)
        fw = self.frameworks.get(task.framework_id)
        if fw is not None and fw.tasks.get(task.id) is task:
            del fw.tasks[task.id]
            fw.completed.append(task)
            del fw.completed[: -self.config.max_completed_tasks]

    def _master_update(self, task: Task, state: int, reason: int, message: str, now: float, *, forget: bool) -> None:
        """A master-generated (unacknowledged, at-most-once) update about a known task;
        it joins the task's history."""
        self._set_latest_state(task, self.agents.get(task.agent_id), state)
        self._record_status(task, state, reason, message, now)
        fw = self.frameworks.get(task.framework_id)
        if fw is not None:
            self._reply_status(fw, task.id, for_framework(fw.info, state), reason, message, now, agent_id=task.agent_id)
        if forget:
            self._forget_task(task)

    def _record_status(self, task: Task, state: int, reason: int, message: str, now: float) -> None:
        """A status of the master's own joins the task's history (and operators are told)."""
        status = new_status(task.id, state, SOURCE_MASTER, now, reason=reason, message=message, agent_id=task.agent_id)
        row = status_row(task.framework_id, status)
        statuses = task.statuses
        if len(statuses) >= MAX_TASK_STATUSES:
            del statuses[1]
        statuses.append(row[STATUS])
        if self.operator_events is not None:
            self.operator_events.rows([row])

    def _reply_status(self, fw: Framework, task_id: str, state: int, reason: int, message: str, now: float,
                      *, agent_id: str | None = None) -> None:
        state = for_framework(fw.info, state)
        status = new_status(task_id, state, SOURCE_MASTER, now, reason=reason, message=message, agent_id=agent_id)
        if fw.connected:
            self.send_row(fw.transport, _UPDATES, status_row(fw.id, status))
