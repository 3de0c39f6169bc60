"""The driver's executors as corral tasks: which offers to take and which to decline.

The pool wants `executors` executors of `resources` each. From a batch of offers it
launches them spread across agents (in rounds: at most one per agent per round, agents
with the fewest of ours first), declines the rest with a long filter, and suppresses
offers once it has them all; when one ends it revives offers for a replacement, and
again when corral's terminal status for it comes after its link closed (the master
frees its resources only then; the replacement would otherwise wait for the next
allocation cycle).

An agent whose executors keep failing (`blacklist_strikes` unplanned ends within
`blacklist_seconds`) is avoided for `blacklist_seconds`, then tried again: its offers
are declined with a filter that lasts as long as the ban, so the master offers it anew
when the ban is over. Executors that end before ever registering with the driver
`max_launch_failures` times in a row make the pool give up (`gave_up` says why): they
would fail the same way forever (a bad URI, a missing module).
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import corral


@dataclass
class PoolConfig:
    executors: int
    resources: corral.Resources
    #: seconds a declined offer's resources are not offered again
    refuse_seconds: float = 120.0
    blacklist_strikes: int = 2
    blacklist_seconds: float = 60.0
    #: consecutive executors that end without registering before the pool gives up
    max_launch_failures: int = 0

    def __post_init__(self) -> None:
        if self.max_launch_failures <= 0:
            self.max_launch_failures = 2 * self.executors + 1


class ExecutorPhase(enum.Enum):
    LAUNCHING = "launching"
    REGISTERED = "registered"
    ENDED = "ended"


@dataclass(eq=False)
class ExecutorRecord:
    id: str
    agent_id: str
    hostname: str
    launched: float
    phase: ExecutorPhase = ExecutorPhase.LAUNCHING
    #: how it ended, for messages
    end: str = ""


@dataclass
class LaunchExecutors:
    offer_id: corral.OfferID
    tasks: list[corral.TaskInfo]


@dataclass
class DeclineOffer:
    offer_id: corral.OfferID
    agent_id: str
    refuse_seconds: float


@dataclass
class SuppressOffers:
    pass


@dataclass
class ReviveOffers:
    pass


@dataclass
class KillExecutor:
    executor_id: str


@dataclass
class PoolGaveUp:
    message: str


class ExecutorPool:
    def __init__(self, config: PoolConfig, make_task: Callable[[str, corral.Offer], corral.TaskInfo],
                 emit: Callable[[Any], None], id_prefix: str = "exec") -> None:
        self.config = config
        self._make_task = make_task
        self._emit = emit
        self._prefix = id_prefix
        self.records: dict[str, ExecutorRecord] = {}
        self._launched = 0
        self.suppressed = False
        self.stopping = False
        self.gave_up: str | None = None
        self._strikes: dict[str, list[float]] = {}
        #: agent id -> time its ban ends
        self.banned_until: dict[str, float] = {}
        self._failures_in_a_row = 0
        #: the last reasons executors ended for, for error messages
        self.recent_ends: list[str] = []
        #: the resources of the last offer that could not hold an executor
        self.last_unfit_offer = ""
        self.offers_seen = 0

    def live(self) -> list[ExecutorRecord]:
        return [r for r in self.records.values() if r.phase is not ExecutorPhase.ENDED]

    def banned(self, agent_id: str, now: float) -> float:
        """Seconds left of `agent_id`'s ban (0 if it is not banned)."""
        until = self.banned_until.get(agent_id)
        if until is None:
            return 0.0
        if until <= now:
            del self.banned_until[agent_id]
            return 0.0
        return until - now

    # -------------------------------------------------------------------- offers
    def offers(self, offers: list[corral.Offer], now: float) -> None:
        self.offers_seen += len(offers)
        need = self._missing()
        per_agent = Counter(r.agent_id for r in self.live())
        room = {o.id.value: corral.Resources.from_protos(o.resources) for o in offers}
        chosen: dict[str, list[corral.TaskInfo]] = {}
        candidates = [o for o in offers if not self.banned(o.agent_id.value, now)]
        while need > 0:
            placed: set[str] = set()  # one executor per agent per round
            for offer in sorted(candidates, key=lambda o: (per_agent[o.agent_id.value], o.agent_id.value)):
                agent = offer.agent_id.value
                if need == 0 or agent in placed:
                    continue
                available = room[offer.id.value]
                if not available.contains(self.config.resources):
                    self.last_unfit_offer = f"{available} on {offer.hostname or agent}"
                    continue
                chosen.setdefault(offer.id.value, []).append(self._launch(offer, now))
                room[offer.id.value] = available - self.config.resources
                per_agent[agent] += 1
                placed.add(agent)
                need -= 1
            if not placed:
                break
        for offer in offers:
            tasks = chosen.get(offer.id.value)
            if tasks:
                self._emit(LaunchExecutors(offer.id, tasks))
            else:
                ban = self.banned(offer.agent_id.value, now)
                self._emit(DeclineOffer(offer.id, offer.agent_id.value, ban if ban else self.config.refuse_seconds))
        if need == 0 and not self.suppressed:
            self.suppressed = True
            self._emit(SuppressOffers())

    def _launch(self, offer: corral.Offer, now: float) -> corral.TaskInfo:
        self._launched += 1
        executor_id = f"{self._prefix}-{self._launched}"
        self.records[executor_id] = ExecutorRecord(executor_id, offer.agent_id.value, offer.hostname, now)
        return self._make_task(executor_id, offer)

    # ----------------------------------------------------------------- lifecycle
    def registered(self, executor_id: str) -> bool:
        """The executor connected to the driver; False if it is not one we launched."""
        record = self.records.get(executor_id)
        if record is None or record.phase is not ExecutorPhase.LAUNCHING:
            return False
        record.phase = ExecutorPhase.REGISTERED
        self._failures_in_a_row = 0
        return True

    def status(self, status: corral.TaskStatus, now: float) -> ExecutorRecord | None:
        """A status of an executor's task; the record if this ended the executor now."""
        if not (corral.is_terminal(status.state) or status.state == corral.TASK_UNREACHABLE):
            return None
        record = self.records.get(status.task_id.value)
        if record is not None and record.phase is ExecutorPhase.ENDED:
            if corral.is_terminal(status.state) and self._missing() > 0:
                # it was given up for lost before (its link closed): the master frees its
                # resources only now, so ask for them at once rather than at the next
                # allocation cycle
                self._emit(ReviveOffers())
            return None
        reason = f"{corral.state_name(status.state)}" + (f": {status.message}" if status.message else "")
        return self.ended(status.task_id.value, reason, now, corral_knows=True)

    def _missing(self) -> int:
        """How many executors the pool wants launched now."""
        return 0 if self.stopping or self.gave_up else self.config.executors - len(self.live())

    def agent_lost(self, agent_id: str, now: float) -> list[ExecutorRecord]:
        return [r for r in list(self.live()) if r.agent_id == agent_id
                and self.ended(r.id, "its agent was lost", now, corral_knows=True)]

    def ended(self, executor_id: str, reason: str, now: float, corral_knows: bool = False) -> ExecutorRecord | None:
        """The executor is gone (or its link to the driver is); the record if it was live."""
        record = self.records.get(executor_id)
        if record is None or record.phase is ExecutorPhase.ENDED:
            return None
        never_registered = record.phase is ExecutorPhase.LAUNCHING
        record.phase = ExecutorPhase.ENDED
        record.end = reason
        if self.stopping:
            return record  # the framework's teardown ends what is left
        if not corral_knows:
            self._emit(KillExecutor(executor_id))  # in case its process lingers
        self.recent_ends = (self.recent_ends + [f"{executor_id} on {record.hostname or record.agent_id}: {reason}"])[-3:]
        self._strike(record.agent_id, now)
        if never_registered:
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= self.config.max_launch_failures and self.gave_up is None:
                self.gave_up = (f"{self._failures_in_a_row} executors in a row ended before they started; "
                                f"the last: {'; '.join(self.recent_ends)}")
                self._emit(PoolGaveUp(self.gave_up))
                return record
        if self.suppressed:
            self.suppressed = False
            self._emit(ReviveOffers())
        return record

    def _strike(self, agent_id: str, now: float) -> None:
        window = self.config.blacklist_seconds
        strikes = [t for t in self._strikes.get(agent_id, []) if now - t < window] + [now]
        if len(strikes) >= self.config.blacklist_strikes:
            self.banned_until[agent_id] = now + window
            strikes = []
        self._strikes[agent_id] = strikes

    def stop(self) -> None:
        self.stopping = True
        for record in self.live():
            if record.phase is ExecutorPhase.LAUNCHING:
                self._emit(KillExecutor(record.id))
