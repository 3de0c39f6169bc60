"""The framework's calls through the scheduler driver: accept, decline, revive,
suppress, kill (retried with backoff until the task ends), explicit reconciliation,
framework messages, and stop; a call while not subscribed is dropped and reported."""
from __future__ import annotations

from typing import Any, Iterable

from corral._core.encoding import encode_reconcile
from corral.engines.base import Callback, on_timer
from corral.engines.scheduler.events import SchedulerEvent, SchedulerTimer, Subscription
from corral.protos import corral_pb2 as pb


class CallsMixin:
    """The framework's calls (a part of `SchedulerEngine`)."""

    def accept(self, offer_ids: Iterable[pb.OfferID], operations: Iterable[pb.Offer.Operation],
               filters: pb.Filters | None, now: float) -> None:
        msg = pb.Accept(framework_id=self.info.id, offer_ids=list(offer_ids), operations=list(operations))
        if filters is not None:
            msg.filters.CopyFrom(filters)
        for op in msg.operations:
            for task in op.launch.task_infos:
                self.reconciler.track(task.task_id.value, task.agent_id.value, pb.TASK_STAGING, now)
        self._call(msg)

    def decline(self, offer_ids: Iterable[pb.OfferID], filters: pb.Filters | None) -> None:
        msg = pb.Decline(framework_id=self.info.id, offer_ids=list(offer_ids))
        if filters is not None:
            msg.filters.CopyFrom(filters)
        self._call(msg)

    def revive(self, roles: Iterable[str] = ()) -> None:
        self._call(pb.Revive(framework_id=self.info.id, roles=list(roles)))

    def suppress(self, roles: Iterable[str] = ()) -> None:
        self._call(pb.Suppress(framework_id=self.info.id, roles=list(roles)))

    def kill(self, task_id: pb.TaskID, now: float) -> None:
        """Kill a task; retried with backoff until a terminal update arrives (kills are
        best-effort on the wire)."""
        tid = task_id.value
        self._send_kill(tid)
        if self.reconciler.tracks(tid):
            retry = self._kill_retries[tid] = self._kill_policy.retry()
            self.set_timer(SchedulerTimer.KILL, retry.next_deadline(now), tid)

    def _send_kill(self, tid: str) -> None:
        msg = pb.Kill(framework_id=self.info.id, task_id=pb.TaskID(value=tid))
        agent_id = self.reconciler.agent_of(tid)
        if agent_id:
            msg.agent_id.value = agent_id
        self._call(msg)

    @on_timer(SchedulerTimer.KILL)
    def _retry_kill(self, tid: str, now: float) -> None:
        retry = self._kill_retries.get(tid)
        if retry is None or not self.reconciler.tracks(tid):
            self._kill_retries.pop(tid, None)
            return
        if self.subscription is Subscription.SUBSCRIBED:
            self.counters["kill_retries"] += 1
            self._send_kill(tid)
        self.set_timer(SchedulerTimer.KILL, retry.next_deadline(now), tid)

    def reconcile(self, statuses: Iterable[pb.TaskStatus]) -> None:
        self._call(self._reconcile_call([(status.task_id.value, status.agent_id.value) for status in statuses]))

    def _reconcile_call(self, tasks: list[tuple[str, str]]) -> pb.Reconcile:
        """The Reconcile call naming `tasks` ((task id, agent id or "")), none for an
        implicit one (written by `_core`, no protobuf object per task)."""
        return pb.Reconcile.FromString(encode_reconcile(self.info.id.value, tasks))

    def send_framework_message(self, executor_id: pb.ExecutorID, agent_id: pb.AgentID, data: bytes) -> None:
        self._call(pb.FrameworkToExecutor(framework_id=self.info.id, agent_id=agent_id,
                                          executor_id=executor_id, data=data))

    def stop(self, failover: bool) -> None:
        """Leave: tear the framework down, or (failover=True) keep its tasks running
        for failover_timeout so a new scheduler can take over."""
        if self.subscription is Subscription.SUBSCRIBED:
            if failover:
                self._call(pb.Deactivate(framework_id=self.info.id))
            else:
                self._call(pb.Teardown(framework_id=self.info.id))
        self.subscription = Subscription.DISCONNECTED
        self.cancel_timer(SchedulerTimer.SUBSCRIBE)

    def _call(self, msg: Any) -> None:
        if self.subscription is Subscription.SUBSCRIBED:
            self.send(self.master, msg)
        else:
            self.emit(Callback(SchedulerEvent.ERROR, f"{type(msg).__name__} dropped: the driver is not subscribed"))
