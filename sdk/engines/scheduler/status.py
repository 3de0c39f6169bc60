"""How the scheduler driver delivers status updates: each update reaches the user's
`status_update` once per uuid (the memory of delivered uuids, by task, is bounded), a
duplicate is counted and acknowledged again if it was, and acknowledgements go to the
master once a callback returned (or when the framework acknowledges explicitly). The
per-row loops are in `_status`."""
from __future__ import annotations

from google.protobuf.message import DecodeError

from corral.net import wire
from corral.engines.base import on
from corral.engines.common import TERMINAL_STATES
from corral.engines.scheduler._status import mark_acknowledged, scheduler_updates
from corral.engines.scheduler.events import SchedulerEvent, SchedulerTimer, Subscription
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb

_STATUS_UPDATE = SchedulerEvent.STATUS_UPDATE  # (an Enum member read from its class costs a Python call)
_parse_status = pb.TaskStatus.FromString


class StatusMixin:
    """The scheduler engine's status updates and acknowledgements (a part of `SchedulerEngine`)."""

    @on(T.UPDATES)
    def _updates(self, sender: str, msg: wire.Updates, now: float) -> None:
        """Hand each update (its status serialised) to the user, once per uuid; keep the
        task's state. A uuid is empty on the master's own updates, which are never
        acknowledged."""
        if not self._from_master(sender):
            return
        callbacks, seen, terminal, duplicates, malformed = scheduler_updates(
            msg.rows, self._delivered, self.config.delivered_uuids_per_task, _parse_status, DecodeError,
            TERMINAL_STATES, _STATUS_UPDATE)
        self._actions.extend(callbacks)  # (emitted in one call: one per update)
        if seen:
            self.reconciler.updated(seen, now)
        for tid in terminal:
            self._kill_retries.pop(tid, None)
            self.cancel_timer(SchedulerTimer.KILL, tid)
            self._completed_task(tid)
        for duplicate in duplicates:
            self._duplicate(*duplicate)
        counters = self.counters
        counters["updates"] += len(callbacks)
        if malformed:
            counters["malformed_updates"] += malformed
        if callbacks and self._held_offers:
            self._release_offers()

    def _completed_task(self, tid: str) -> None:
        """`tid`'s terminal update was delivered: forget the uuids of the tasks that
        completed longest ago, past `completed_tasks_remembered`."""
        completed = self._completed
        completed.append(tid)
        while len(completed) > self.config.completed_tasks_remembered:
            old = completed.popleft()
            if not self.reconciler.tracks(old):  # (not relaunched under the same id since)
                self._delivered.pop(old, None)

    def _duplicate(self, tid: str, uuid: bytes, data: bytes, acked: bool) -> None:
        """An update delivered before came again: counted, not delivered; acknowledged
        again if we had (our ack was lost)."""
        self.counters["duplicate_updates"] += 1
        if acked:
            status = self._parse(data)
            if status is not None:
                self.acknowledge_delivered([(status.agent_id.value, tid, uuid)])

    def _parse(self, data: bytes) -> pb.TaskStatus | None:
        try:
            return pb.TaskStatus.FromString(data)
        except DecodeError:
            self.counters["malformed_updates"] += 1
            return None

    def acknowledge(self, status: pb.TaskStatus) -> None:
        """Acknowledge one update (explicitly)."""
        if status.uuid:  # master-generated updates are never acknowledged
            self.acknowledge_delivered([(status.agent_id.value, status.task_id.value, status.uuid)])

    def acknowledge_delivered(self, acks: list[tuple[str, str, bytes]]) -> None:
        """Acknowledge updates by the rows their callbacks carry (`Callback.ack`): what
        the drivers do once a callback returned."""
        mark_acknowledged(acks, self._delivered)
        if self.subscription is Subscription.SUBSCRIBED and acks:
            self.send_rows(self.master, self._ack_kind, list(acks))
            self.counters["acks_sent"] += len(acks)

    def redeliver(self, status: pb.TaskStatus) -> None:
        """The user's callback failed on `status`: deliver it again when the agent retries
        (it is not acknowledged, so the agent will)."""
        delivered = self._delivered.get(status.task_id.value)
        if delivered is not None:
            slot = delivered.find(status.uuid)
            if slot >= 0:
                delivered.forget(slot)
