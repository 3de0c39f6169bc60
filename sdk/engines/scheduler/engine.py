"""The scheduler-driver engine: the class that holds the driver's state and composes
its concerns; here, subscription (with failover), the master's events, and driving
reconciliation (see the package's docstring for the rest)."""
from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Any

from corral.net import wire
from corral._core.acks import RECENT_MAX, RecentUuids
from corral.engines.backoff import Backoff, Jitter, Retry
from corral.engines.base import Callback, Engine, MasterLost, Send, earliest, on, on_timer
from corral.engines.common import is_terminal
from corral.engines.scheduler.calls import CallsMixin
from corral.engines.scheduler.events import Abort, SchedulerEvent, SchedulerTimer, Subscription
from corral.engines.scheduler.reconcile import Escalation, Progress, Query, ReconcileConfig, Reconciler
from corral.engines.scheduler.status import StatusMixin
from corral.net.protocol import MessageType as T
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb


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


class SchedulerEngine(StatusMixin, CallsMixin, Engine):
    ACTIONS = frozenset({Send, Callback, MasterLost, Abort})

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
        #: subscriptions are retried with full jitter: schedulers that lost their master at
        #: once do not subscribe again all at once
        self._subscription_policy = Backoff(self.config.registration_backoff, self.config.registration_backoff_max,
                                            jitter=Jitter.FULL, random=self.rng)
        self._subscription_retry = self._subscription_policy.retry()
        #: kills are retried until the task ends (kills are best effort on the wire)
        self._kill_policy = Backoff(self.config.kill_retry_backoff, self.config.kill_retry_backoff_max)
        self._kill_retries: dict[str, Retry] = {}
        self.counters: dict[str, int] = {"duplicate_updates": 0, "updates": 0, "acks_sent": 0,
                                         "reconcile_calls": 0, "kill_retries": 0, "escalations": 0,
                                         "malformed_updates": 0}

    @property
    def framework_id(self) -> str | None:
        return self.info.id.value if self.info.HasField("id") else None

    def connect(self, master: str, now: float) -> None:
        """Subscribe (again) through the master at transport address `master`. Another
        master than the one we were subscribed with (a new leader) means we were
        disconnected from the old one: its offers are void and its round is over."""
        if self.master and master != self.master and self.subscription is Subscription.SUBSCRIBED:
            self._master_changed()
        self.master = master
        self.subscription = Subscription.SUBSCRIBING
        self._session = self.rng.randbytes(8)
        self._subscription_retry = self._subscription_policy.retry()
        self._subscribe()
        self.set_timer(SchedulerTimer.SUBSCRIBE, self._subscription_retry.next_deadline(now))

    def _subscribe(self) -> None:
        self.send(self.master, pb.Subscribe(framework_info=self.info, transport=self.transport,
                                            force=self.framework_id is not None, session=self._session))

    @on_timer(SchedulerTimer.SUBSCRIBE)
    def _subscription_attempt(self, _subject: None, now: float) -> None:
        if self.subscription is Subscription.SUBSCRIBING:
            self._subscribe()
            self.set_timer(SchedulerTimer.SUBSCRIBE, self._subscription_retry.next_deadline(now))

    def next_deadline(self) -> float | None:
        return earliest(super().next_deadline(), self.reconciler.next_deadline())

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.subscription is Subscription.SUBSCRIBED:
            self._reconcile_actions(self.reconciler.due(now), now)

    def peer_event(self, address: str, event: PeerEvent, now: float) -> None:
        if address != self.master or event is not PeerEvent.DISCONNECTED:
            return
        if self.subscription in (Subscription.SUBSCRIBED, Subscription.SUBSCRIBING):
            self._master_changed()
            self.emit(MasterLost())

    def _master_changed(self) -> None:
        """The master we were subscribed with is lost: its offers are void."""
        self.subscription = Subscription.DISCONNECTED
        self.cancel_timer(SchedulerTimer.SUBSCRIBE)
        self.reconciler.reset()
        self._held_offers.clear()
        self.emit(Callback(SchedulerEvent.DISCONNECTED))

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
        self.cancel_timer(SchedulerTimer.SUBSCRIBE)
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
            self.cancel_timer(SchedulerTimer.SUBSCRIBE)
            self.emit(Abort())

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
