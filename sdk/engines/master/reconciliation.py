"""The master engine's answers to reconciliation: the latest state of each task a framework
asks about (or of all its tasks), the Mesos answer for tasks it does not know, and
agents asked about tasks still STAGING. A task whose agent has not reregistered since
this master started gets no answer yet, as in Mesos; unlike Mesos, it is answered as
soon as its agent is back (or unreachable, or gone), so that a framework's round after
a failover converges when the agents are back, not a retry later."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from corral._core.encoding import answer_status
from corral.engines.base import on
from corral.engines.common import PARTITION_AWARE_STATES, partition_aware
from corral.engines.master.records import AgentState, Framework, Task
from corral.engines.master.status import SOURCE_MASTER, _UPDATES
from corral.engines.status import Batch, HEALTHY, HEALTH_UNREPORTED, UNHEALTHY
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb

Reason = pb.TaskStatus.Reason


class ReconciliationMixin:
    """The master engine's answers to Reconcile calls (a part of `MasterEngine`)."""

    @on(T.RECONCILE)
    def _reconcile(self, sender: str, msg: pb.Reconcile, now: float) -> None:
        """Answer every task named (or, with none named, every task of the framework):
        the latest state of a known task; the Mesos answer for one the master does not
        know, by what it knows of the task's agent; nothing yet for a task whose agent
        has not reregistered since this master started. Agents are asked about the
        tasks that are still STAGING (`_ask_agents_about_staging`)."""
        fw = self._framework_from(sender, msg.framework_id.value)
        if fw is None:
            return
        self.counters["reconcile_calls"] += 1
        fw.reconcile_calls += 1
        fw.last_reconcile = now
        if not fw.connected or not fw.transport:
            return  # answers go to a connected framework only: nothing else to do
        answers = _Answers(self.send, fw.transport, fw.id)
        answer = self._known_task_answerer(fw, answers, now)
        if not msg.tasks:
            for task in fw.tasks.values():
                answer(task)
            answers.flush()
            self._ask_agents_about_staging(fw, fw.tasks.values())
            return
        entries = [(e.task_id.value, e.agent_id.value if e.HasField("agent_id") else None) for e in msg.tasks]
        known = self._answer_explicitly(fw, entries, answers, answer, now)
        answers.flush()
        self._ask_agents_about_staging(fw, known)

    def _answer_explicitly(self, fw: Framework, entries: list[tuple[str, str | None]], answers: _Answers,
                           answer: Callable[[Task], None], now: float) -> list[Task]:
        """Answer each (task id, agent id) asked about; a task whose agent has not
        reregistered since this master started gets no answer yet: it is answered once
        the agent is back, or is unreachable, or gone (`_answer_deferred`). The known
        tasks answered, returned."""
        tasks = fw.tasks
        known: list[Task] = []
        unknown = _answer_fields(now, "reconciliation: task unknown to the master")
        aware = partition_aware(fw.info)
        for tid, agent_id in entries:
            task = tasks.get(tid)
            if task is not None:
                answer(task)
                known.append(task)
                continue
            agent = self.agents.get(agent_id) if agent_id else None
            if agent is not None:
                state = pb.TASK_UNREACHABLE if agent.state is AgentState.UNREACHABLE else pb.TASK_GONE
            elif agent_id in self.recovering:
                # its agent has not reregistered since this master started: nothing yet
                self.deferred_answers.setdefault(agent_id, {}).setdefault(fw.id, set()).add(tid)
                continue
            elif agent_id in self.gone:
                state = pb.TASK_GONE_BY_OPERATOR
            elif agent_id in self.unreachable_since:
                state = pb.TASK_UNREACHABLE
            else:
                state = pb.TASK_UNKNOWN
            answers.add(unknown, tid, state if aware or state not in PARTITION_AWARE_STATES else pb.TASK_LOST,
                        agent_id, HEALTH_UNREPORTED)
        return known

    def _answer_deferred(self, agent_id: str, now: float) -> None:
        """The agent whose tasks got no answer yet (it had not reregistered since this
        master started) is back, unreachable or gone: answer what was asked about it,
        to each framework still connected, as a reconcile call would now."""
        for fid, tids in sorted(self.deferred_answers.pop(agent_id, {}).items()):
            fw = self.frameworks.get(fid)
            if fw is None or not fw.connected or not fw.transport:
                continue
            answers = _Answers(self.send, fw.transport, fw.id)
            known = self._answer_explicitly(fw, [(tid, agent_id) for tid in sorted(tids)], answers,
                                            self._known_task_answerer(fw, answers, now), now)
            answers.flush()
            self._ask_agents_about_staging(fw, known)

    def _ask_agents_about_staging(self, fw: Framework, tasks: Iterable[Task]) -> None:
        """Tasks still STAGING that a framework asks about: their agents never reported
        them, and their launch may have been lost on the way (a connection cut shorter
        than the heartbeat timeout drops what it carried, and the agent does not
        reregister). Ask each agent (`ReconcileTasks`, after the launch on the same
        ordered connection): it answers a task it does not have with a reliable
        TASK_DROPPED, so the task does not stay STAGING for ever."""
        staging: dict[str, list[str]] = {}
        for task in tasks:
            if task.state == pb.TASK_STAGING and task.status_update_state == pb.TASK_STAGING:
                staging.setdefault(task.agent_id, []).append(task.id)
        for agent_id, tids in staging.items():
            agent = self.agents.get(agent_id)
            if agent is not None and agent.state is AgentState.REGISTERED:
                self.send(agent.transport, pb.ReconcileTasks(framework_id=pb.FrameworkID(value=fw.id),
                                                             task_ids=[pb.TaskID(value=t) for t in tids],
                                                             framework=fw.info))

    def _known_task_answerer(self, fw: Framework, answers: _Answers, now: float) -> Callable[[Task], None]:
        """answer(task): add the reconciliation answer for one of `fw`'s known tasks.

        The answers of one reconcile call differ only in task, agent, state and health:
        each is those written before the fields they share (`corral._core.encoding.answer_status`), no
        protobuf object per answer."""
        shared = _answer_fields(now, "reconciliation")
        aware = partition_aware(fw.info)
        agents = self.agents
        add = answers.add
        unreachable = AgentState.UNREACHABLE
        health = {None: HEALTH_UNREPORTED, True: HEALTHY, False: UNHEALTHY}

        def answer(task: Task) -> None:
            state = task.status_update_state
            aid = task.agent_id
            agent = agents.get(aid)
            if agent is not None and agent.state is unreachable:
                state = pb.TASK_UNREACHABLE
            if not aware and state in PARTITION_AWARE_STATES:
                state = pb.TASK_LOST
            add(shared, task.id, state, aid, health[task.healthy])

        return answer


#: reconcile answers travel in Updates messages of at most this many updates each
ANSWERS_PER_MESSAGE = 1000


class _Answers:
    """The answers to one reconcile call, in Updates messages of at most
    ANSWERS_PER_MESSAGE rows (the master's own updates: no uuid, never acknowledged)."""

    __slots__ = ("_send", "_to", "_framework_id", "_batch")

    def __init__(self, send: Callable[[str, Any], None], to: str, framework_id: str) -> None:
        self._send = send
        self._to = to
        self._framework_id = framework_id
        self._batch = Batch(to, _UPDATES)

    def add(self, shared: bytes, task_id: str, state: int, agent_id: str | None, health: int) -> None:
        """Answer `state` for a task: a TaskStatus of the task's ids, state and health
        and the `shared` fields (`_answer_fields`)."""
        batch = self._batch
        batch.rows.append((self._framework_id, "", task_id, state, b"",
                           answer_status(task_id, state, agent_id, health, shared), health, state))
        if len(batch.rows) == ANSWERS_PER_MESSAGE:
            self.flush()

    def flush(self) -> None:
        """Send what was answered since the last message."""
        if self._batch.rows:
            self._send(self._to, self._batch.message())
            self._batch = Batch(self._to, _UPDATES)


def _answer_fields(now: float, message: str) -> bytes:
    """What every answer to one reconcile call has in common (source, reason, time,
    message), serialised: the tail of each answer's TaskStatus."""
    return pb.TaskStatus(source=SOURCE_MASTER, timestamp=now, reason=Reason.REASON_RECONCILIATION,
                         message=message).SerializePartialToString()
