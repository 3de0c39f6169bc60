"""The scheduler-driver engine: subscription (with failover), offers, status updates
with de-duplication and acknowledgements, built-in reconciliation, kill retries, and
the framework's calls, sans I/O.

Every update with a uuid reaches the user's `status_update` once per uuid; a duplicate
(the agent retried because an ack was lost) is counted and acknowledged again but not
delivered. With implicit acknowledgements the runtime calls `acknowledge` after the
callback returns; with explicit ones the framework calls it.

After every (re)registration the engine runs a reconciliation round over the
framework's non-terminal tasks (corral.reconcile) and holds offers back from the user
until the first round converges. `kill` is retried with backoff until the task reports
a terminal state. When the transport reports the master gone, the user is told
(`disconnected`) and the driver looks for the leader again (`MasterLost`).
"""
from __future__ import annotations

import collections
import enum
import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from google.protobuf.message import DecodeError

from corral import wire
from corral._core.acks import RECENT_MAX, RecentUuids
from corral._core.encoding import encode_reconcile
from corral._core.relay import mark_acknowledged, scheduler_updates
from corral.engines.base import Callback, Engine, MasterLost, on
from corral.engines.common import TERMINAL_STATES, is_terminal
from corral.protocol import MessageType as T
from corral.protocol import PeerEvent
from corral.protos import corral_pb2 as pb
from corral.reconcile import Escalation, Progress, Query, ReconcileConfig, Reconciler


class SchedulerEvent(enum.Enum):
    """Callbacks of `corral.Scheduler`; the value is the method name."""

    REGISTERED = "registered"
    REREGISTERED = "reregistered"
    DISCONNECTED = "disconnected"
    RESOURCE_OFFERS = "resource_offers"
    OFFER_RESCINDED = "offer_rescinded"
    STATUS_UPDATE = "status_update"
    FRAMEWORK_MESSAGE = "framework_message"
    AGENT_LOST = "agent_lost"
    EXECUTOR_LOST = "executor_lost"
    ERROR = "error"
    RECONCILIATION_STALLED = "reconciliation_stalled"


_STATUS_UPDATE = SchedulerEvent.STATUS_UPDATE  # (an Enum member read from its class costs a Python call)
_parse_status = pb.TaskStatus.FromString


class Subscription(enum.Enum):
    DISCONNECTED = "disconnected"
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"
    FAILED = "failed"


class Abort:
    """The driver must abort (the master refused this scheduler for good)."""


@dataclass
class SchedulerConfig:
    implicit_acknowledgements: bool = True
    #: subscription backoff: random [0, b], b doubling up to the cap
    registration_backoff: float = 2.0
    registration_backoff_max: float = 60.0
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    #: kill retries: first after this many seconds, doubling up to the cap
    kill_retry_backoff: float = 2.0
    kill_retry_backoff_max: float = 60.0
    #: de-duplication memory: the uuids of the last this many updates delivered per task
    #: (1 to 64; an agent resends only the head of a task's stream, and moves on once it
    #: is acknowledged, so an older uuid can only come back as a stale copy; each uuid
    #: more is 16 bytes per task, and at 64 the memories of 10 000 tasks no longer fit
    #: the cache: benches/README.md)...
    delivered_uuids_per_task: int = 8
    #: ...kept for the last this many tasks whose terminal update was delivered (an
    #: unacknowledged terminal update is retried by its agent every few seconds)
    completed_tasks_remembered: int = 10_000


class SchedulerEngine(Engine):
    def __init__(self, framework_info: pb.FrameworkInfo, transport: str,
                 config: SchedulerConfig | None = None, rng: random.Random | None = None) -> None:
        super().__init__()
        self.info = pb.FrameworkInfo()
        self.info.CopyFrom(framework_info)
        self.transport = transport
        self.config = config or SchedulerConfig()
        if not 0 < self.config.delivered_uuids_per_task <= RECENT_MAX:
            raise ValueError(f"delivered_uuids_per_task must be 1 to {RECENT_MAX}, "
                             f"not {self.config.delivered_uuids_per_task}")
        self.rng = rng or random.Random()
        self.subscription = Subscription.DISCONNECTED
        self.master: str | None = None
        self.master_info: pb.MasterInfo | None = None
        #: names the current subscription attempt (see Subscribe.session)
        self._session = b""
        self.reconciler = Reconciler(self.config.reconcile)
        self._ever_subscribed = False
        #: per task, the uuids of the last `delivered_uuids_per_task` updates delivered
        #: to the user, each flagged once acknowledged
        self._delivered: dict[str, RecentUuids] = {}
        #: tasks whose terminal update was delivered, oldest first: their memory goes
        #: beyond `completed_tasks_remembered`
        self._completed: collections.deque[str] = collections.deque()
        #: the batch kind of our acks (see `Engine.send_row`), set once subscribed
        self._ack_kind: tuple[Any, ...] = (wire.Acknowledge, "")
        self._held_offers: dict[str, pb.Offer] = {}
        self._kill_backoff: dict[str, float] = {}
        self._backoff = self.config.registration_backoff
        self.counters: dict[str, int] = {"duplicate_updates": 0, "updates": 0, "acks_sent": 0,
                                         "reconcile_calls": 0, "kill_retries": 0, "escalations": 0,
                                         "malformed_updates": 0}

    @property
    def framework_id(self) -> str | None:
        return self.info.id.value if self.info.HasField("id") else None

    # ---------------------------------------------------------- subscription
    def connect(self, master: str, now: float) -> None:
        """Subscribe (again) through the master at transport address `master`."""
        self.master = master
        self.subscription = Subscription.SUBSCRIBING
        self._session = self.rng.randbytes(8)
        self._backoff = self.config.registration_backoff
        self._subscribe()
        self.set_timer(("subscribe",), now + self.rng.uniform(0, self._backoff))

    def _subscribe(self) -> None:
        self.send(self.master, pb.Subscribe(framework_info=self.info, transport=self.transport,
                                            force=self.framework_id is not None, session=self._session))

    def on_timer(self, key: Any, now: float) -> None:
        if key == ("subscribe",):
            if self.subscription is Subscription.SUBSCRIBING:
                self._subscribe()
                self._backoff = min(self._backoff * 2, self.config.registration_backoff_max)
                self.set_timer(("subscribe",), now + self.rng.uniform(0, self._backoff))
        elif key[0] == "kill":
            self._retry_kill(key[1], now)
        else:
            super().on_timer(key, now)

    def next_deadline(self) -> float | None:
        a, b = super().next_deadline(), self.reconciler.next_deadline()
        if a is None:
            return b
        return a if b is None else min(a, b)

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.subscription is Subscription.SUBSCRIBED:
            self._reconcile_actions(self.reconciler.due(now), now)

    def peer_event(self, address: str, event: PeerEvent, now: float) -> None:
        if address != self.master or event is not PeerEvent.DISCONNECTED:
            return
        if self.subscription in (Subscription.SUBSCRIBED, Subscription.SUBSCRIBING):
            self.subscription = Subscription.DISCONNECTED
            self.cancel_timer(("subscribe",))
            self.reconciler.reset()
            self._held_offers.clear()
            self.emit(Callback(SchedulerEvent.DISCONNECTED))
            self.emit(MasterLost())

    # --------------------------------------------------------- reconciliation
    def _reconcile_actions(self, items: list[Query | Escalation], now: float) -> None:
        for item in items:
            if isinstance(item, Query):
                self.counters["reconcile_calls"] += 1
                self.send(self.master, self._reconcile_call(list(item.tasks)))
            else:
                self.counters["escalations"] += 1
                progress = item.progress
                self.emit(Callback(SchedulerEvent.ERROR,
                                   f"reconciliation round {progress.round} has not converged after "
                                   f"{progress.attempts} attempts: {progress.remaining} task(s) unanswered "
                                   f"({', '.join(item.task_ids[:10])}{', ...' if len(item.task_ids) > 10 else ''})"))
                self.emit(Callback(SchedulerEvent.RECONCILIATION_STALLED, progress, list(item.task_ids)))
        self._release_offers()

    def _release_offers(self) -> None:
        if self._held_offers and self.reconciler.converged:
            offers, self._held_offers = list(self._held_offers.values()), {}
            self.emit(Callback(SchedulerEvent.RESOURCE_OFFERS, offers))

    def progress(self, now: float) -> Progress:
        """The current reconciliation round: number, tasks remaining, oldest pending."""
        return self.reconciler.progress(now)

    def task_states(self) -> dict[str, tuple[str, int]]:
        """Non-terminal tasks of the framework: task id -> (agent id, latest state)."""
        return self.reconciler.tasks

    def track_tasks(self, statuses: list[pb.TaskStatus], now: float) -> None:
        """Tasks a restarted framework knows from its own store; they are reconciled in
        the next round."""
        for status in statuses:
            if not is_terminal(status.state):
                self.reconciler.track(status.task_id.value, status.agent_id.value, status.state, now)

    def _from_master(self, sender: str) -> bool:
        """Events count only from the master we are subscribed with (offers or updates
        that overtake our Subscribed are dropped, as Mesos drivers do)."""
        return sender == self.master and self.subscription is Subscription.SUBSCRIBED

    @on(T.SUBSCRIBED)
    def _subscribed(self, sender: str, msg: pb.Subscribed, now: float) -> None:
        if sender != self.master or self.subscription is not Subscription.SUBSCRIBING or msg.session != self._session:
            return  # (a late answer to an attempt made before the master was lost)
        first = not self._ever_subscribed
        self._ever_subscribed = True
        self.info.id.CopyFrom(msg.framework_id)
        self._ack_kind = (wire.Acknowledge, msg.framework_id.value)
        self.master_info = msg.master_info
        self.subscription = Subscription.SUBSCRIBED
        self.cancel_timer(("subscribe",))
        if first:
            self.emit(Callback(SchedulerEvent.REGISTERED, msg.framework_id, msg.master_info))
        else:
            self.emit(Callback(SchedulerEvent.REREGISTERED, msg.master_info))
        self._reconcile_actions(self.reconciler.start(now), now)

    @on(T.ERROR)
    def _error(self, sender: str, msg: pb.Error, now: float) -> None:
        if sender != self.master:
            return
        self.emit(Callback(SchedulerEvent.ERROR, msg.message))
        if msg.fatal:
            self.subscription = Subscription.FAILED
            self.cancel_timer(("subscribe",))
            self.emit(Abort())

    # ------------------------------------------------------------------ events
    @on(T.OFFERS)
    def _offers(self, sender: str, msg: pb.Offers, now: float) -> None:
        if not msg.offers:
            return
        if not self._from_master(sender):
            if sender == self.master and self.subscription is Subscription.SUBSCRIBING:
                # offers that overtook the Subscribed we wait for (it was lost, or they
                # follow the answer to an earlier attempt): handed back, offered again at once
                self.send(sender, pb.Decline(framework_id=msg.offers[0].framework_id,
                                             offer_ids=[offer.id for offer in msg.offers],
                                             filters=pb.Filters(refuse_seconds=0.0)))
            return
        if self.reconciler.converged:
            self.emit(Callback(SchedulerEvent.RESOURCE_OFFERS, list(msg.offers)))
        else:
            self._held_offers.update((o.id.value, o) for o in msg.offers)

    @on(T.RESCIND)
    def _rescind(self, sender: str, msg: pb.Rescind, now: float) -> None:
        if self._from_master(sender) and self._held_offers.pop(msg.offer_id.value, None) is None:
            self.emit(Callback(SchedulerEvent.OFFER_RESCINDED, msg.offer_id))

    @on(T.UPDATES)
    def _updates(self, sender: str, msg: wire.Updates, now: float) -> None:
        """Hand each update (its status serialised) to the user, once per uuid; keep the
        task's state. A uuid is empty on the master's own updates, which are never
        acknowledged."""
        if not self._from_master(sender):
            return
        fresh, terminal, duplicates, malformed = scheduler_updates(
            msg.rows, self._delivered, self.config.delivered_uuids_per_task, _parse_status, DecodeError,
            TERMINAL_STATES, self.reconciler, _STATUS_UPDATE, self._actions, now)
        for tid in terminal:
            self._kill_backoff.pop(tid, None)
            self.cancel_timer(("kill", tid))
            self._completed_task(tid)
        for duplicate in duplicates:
            self._duplicate(*duplicate)
        counters = self.counters
        counters["updates"] += fresh
        if malformed:
            counters["malformed_updates"] += malformed
        if fresh and self._held_offers:
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

    @on(T.EXECUTOR_TO_FRAMEWORK)
    def _framework_message(self, sender: str, msg: pb.ExecutorToFramework, now: float) -> None:
        if self._from_master(sender):
            self.emit(Callback(SchedulerEvent.FRAMEWORK_MESSAGE, msg.executor_id, msg.agent_id, msg.data))

    @on(T.FAILURE)
    def _failure(self, sender: str, msg: pb.Failure, now: float) -> None:
        if not self._from_master(sender):
            return
        if msg.HasField("executor_id"):
            self.emit(Callback(SchedulerEvent.EXECUTOR_LOST, msg.executor_id, msg.agent_id, msg.status))
        else:
            self.emit(Callback(SchedulerEvent.AGENT_LOST, msg.agent_id))

    # ------------------------------------------------------- framework calls
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
            self._kill_backoff[tid] = self.config.kill_retry_backoff
            self.set_timer(("kill", tid), now + self.config.kill_retry_backoff)

    def _send_kill(self, tid: str) -> None:
        msg = pb.Kill(framework_id=self.info.id, task_id=pb.TaskID(value=tid))
        agent_id = self.reconciler.agent_of(tid)
        if agent_id:
            msg.agent_id.value = agent_id
        self._call(msg)

    def _retry_kill(self, tid: str, now: float) -> None:
        backoff = self._kill_backoff.get(tid)
        if backoff is None or not self.reconciler.tracks(tid):
            self._kill_backoff.pop(tid, None)
            return
        if self.subscription is Subscription.SUBSCRIBED:
            self.counters["kill_retries"] += 1
            self._send_kill(tid)
        backoff = min(backoff * 2, self.config.kill_retry_backoff_max)
        self._kill_backoff[tid] = backoff
        self.set_timer(("kill", tid), now + backoff)

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
        self.cancel_timer(("subscribe",))

    def _call(self, msg: Any) -> None:
        if self.subscription is Subscription.SUBSCRIBED:
            self.send(self.master, msg)
        else:
            self.emit(Callback(SchedulerEvent.ERROR, f"{type(msg).__name__} dropped: the driver is not subscribed"))
