"""The reconciliation algorithm the scheduler driver runs for every framework.

After every (re)registration a round starts: note the time, ask the master about every
non-terminal task (explicit reconciliation), and wait with truncated exponential
backoff; a task leaves the round as soon as any update about it arrives after the
round's start; repeat for the tasks that remain until none do. One round at a time.
Between rounds, an implicit round (empty task list: the master answers with all it
knows) runs periodically, and a task that sits in STAGING, STARTING or KILLING longer
than `stuck_timeout` is reconciled on its own.

Each round also asks once implicitly, so a restarted framework with no task store of
its own learns its tasks from the master. A round that has not converged after `max_attempts` is escalated (the caller tells the
framework) and keeps going at the longest backoff: never silently retried forever.

Pure logic: `now` is passed in; the caller sends what `due` returns.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from corral._core.decoding import canonical_task_id
from corral.engines.backoff import Backoff, Retry
from corral.engines.base import earliest
from corral.engines.scheduler._status import TrackedTask, track_updates
from corral.protos import corral_pb2 as pb

STUCK_STATES = frozenset({pb.TASK_STAGING, pb.TASK_STARTING, pb.TASK_KILLING})


@dataclass
class ReconcileConfig:
    #: first wait for answers, doubled per attempt up to `max_backoff`
    initial_backoff: float = 2.0
    max_backoff: float = 60.0
    #: attempts of one round before it is escalated to the framework
    max_attempts: int = 6
    #: seconds between implicit rounds (Mesos suggests 15 minutes); 0 disables them
    periodic_interval: float = 900.0
    #: a task in STAGING, STARTING or KILLING this long without news is reconciled
    stuck_timeout: float = 60.0


class RoundKind(enum.Enum):
    EXPLICIT = "explicit"
    IMPLICIT = "implicit"


@dataclass(frozen=True)
class Progress:
    """What a framework can see of the current round or, between rounds, of the last
    one (converged, nothing remaining); `round` 0 and `started_at` None before the
    first."""

    round: int
    kind: RoundKind
    started_at: float | None
    attempts: int
    remaining: int
    oldest_pending: float | None
    converged: bool


@dataclass(frozen=True)
class Query:
    """Send one reconcile call: `tasks` = [(task id, agent id)], empty for implicit."""

    tasks: tuple[tuple[str, str], ...]
    kind: RoundKind


@dataclass(frozen=True)
class Escalation:
    """A round did not converge in `max_attempts`: tell the framework."""

    progress: Progress
    task_ids: tuple[str, ...]


#: a non-terminal task's agent, latest state and time of its last update (a C type in
#: the compiled build, written by `track_updates`)
_Tracked = TrackedTask


@dataclass(slots=True)
class _Round:
    number: int
    kind: RoundKind
    started_at: float
    #: the waits between its attempts
    retry: Retry
    pending: dict[str, float] = field(default_factory=dict)  # task id -> since
    attempts: int = 0
    next_at: float = 0.0
    escalated: bool = False


class Reconciler:
    def __init__(self, config: ReconcileConfig | None = None) -> None:
        self.config = config or ReconcileConfig()
        self._tasks: dict[str, _Tracked] = {}
        #: each round waits for answers this long, then asks again
        self._backoff = Backoff(self.config.initial_backoff, self.config.max_backoff)
        self._round: _Round | None = None
        self._rounds = 0
        #: the last round that converged (what `progress` tells between rounds)
        self._last: _Round | None = None
        self._first_converged = False
        self._next_implicit: float | None = None
        self._stuck_checked: dict[str, float] = {}
        self._next_sweep: float | None = None

    # -- what the driver knows about tasks -----------------------------------------
    def track(self, task_id: str, agent_id: str, state: int, now: float) -> None:
        """A task the framework launched (or handed over after a restart)."""
        self._tasks[canonical_task_id(task_id)] = _Tracked(agent_id, state, now)

    def updated(self, updates: list[tuple[str, str, int, bool]], now: float) -> None:
        """Updates about tasks arrived (from agents or reconcile answers), as (task id,
        agent id, state, terminal) in order: one call per message."""
        current = self._round
        pending = None if current is None else current.pending
        if track_updates(updates, self._tasks, self._stuck_checked, pending, now):
            self._finish_round(now)

    def tracks(self, task_id: str) -> bool:
        """Whether `task_id` is a non-terminal task of ours."""
        return task_id in self._tasks

    def agent_of(self, task_id: str) -> str:
        """The agent a non-terminal task of ours runs on ("" when unknown)."""
        tracked = self._tasks.get(task_id)
        return "" if tracked is None else tracked.agent_id

    @property
    def tasks(self) -> dict[str, tuple[str, int]]:
        """Non-terminal tasks: task id -> (agent id, latest state)."""
        return {tid: (t.agent_id, t.state) for tid, t in self._tasks.items()}

    # -- rounds ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Query]:
        """(Re)registered: begin an explicit round over every non-terminal task, and ask
        once implicitly too, so that tasks this driver does not know (a restarted
        framework without a task store) are learnt from the master's answers."""
        self._rounds += 1
        current = _Round(self._rounds, RoundKind.EXPLICIT, now, self._backoff.retry(),
                         {tid: now for tid in self._tasks})
        self._round = current
        learn = Query((), RoundKind.IMPLICIT)
        if not current.pending:
            self._finish_round(now)
            return [learn]
        return [self._attempt(current, now), learn]

    def _attempt(self, current: _Round, now: float) -> Query:
        current.attempts += 1
        current.next_at = current.retry.next_deadline(now)
        if current.kind is RoundKind.IMPLICIT and current.attempts == 1:
            return Query((), RoundKind.IMPLICIT)
        # later attempts ask explicitly about what the implicit answer did not cover
        return Query(tuple((tid, self._tasks[tid].agent_id if tid in self._tasks else "")
                           for tid in sorted(current.pending)), RoundKind.EXPLICIT)

    def _finish_round(self, now: float) -> None:
        self._last = self._round
        self._round = None
        self._first_converged = True
        if self.config.periodic_interval > 0:
            self._next_implicit = now + self.config.periodic_interval
        if self._next_sweep is None and self.config.stuck_timeout > 0:
            self._next_sweep = now + self.config.stuck_timeout / 2

    @property
    def converged(self) -> bool:
        """True once the first round after (re)registration has converged and no
        explicit round is running; offers are held back until then."""
        return self._first_converged and (self._round is None or self._round.kind is RoundKind.IMPLICIT)

    def reset(self) -> None:
        """Disconnected: the next registration starts a fresh round; offers wait for it."""
        self._round = None
        self._first_converged = False
        self._next_implicit = None
        self._next_sweep = None

    def next_deadline(self) -> float | None:
        return earliest(self._round.next_at if self._round is not None else self._next_implicit, self._next_sweep)

    def due(self, now: float) -> list[Query | Escalation]:
        """What to send (or escalate) now."""
        out: list[Query | Escalation] = []
        current = self._round
        if current is not None:
            if now >= current.next_at:
                if current.attempts >= self.config.max_attempts and not current.escalated:
                    current.escalated = True
                    out.append(Escalation(self.progress(now), tuple(sorted(current.pending))))
                out.append(self._attempt(current, now))
        elif self._next_implicit is not None and now >= self._next_implicit:
            self._rounds += 1
            # an implicit round is answered as a whole; it converges with its first answer
            current = _Round(self._rounds, RoundKind.IMPLICIT, now, self._backoff.retry(),
                             {tid: now for tid in self._tasks})
            self._round = current
            out.append(self._attempt(current, now))
            if not current.pending:
                self._finish_round(now)
        if self._next_sweep is not None and now >= self._next_sweep:
            self._next_sweep = now + self.config.stuck_timeout / 2
            if self._round is None:
                out.extend(self._stuck_query(now))
        return out

    def _stuck_query(self, now: float) -> list[Query]:
        """Tasks in STAGING, STARTING or KILLING without news for `stuck_timeout`."""
        timeout = self.config.stuck_timeout
        stuck = [(tid, t.agent_id) for tid, t in sorted(self._tasks.items())
                 if t.state in STUCK_STATES and now >= max(t.last_update, self._stuck_checked.get(tid, 0.0)) + timeout]
        for tid, _ in stuck:
            self._stuck_checked[tid] = now
        return [Query(tuple(stuck), RoundKind.EXPLICIT)] if stuck else []

    def progress(self, now: float) -> Progress:
        current = self._round
        if current is None:
            last = self._last
            if last is None:
                return Progress(0, RoundKind.EXPLICIT, None, 0, 0, None, True)
            return Progress(last.number, last.kind, last.started_at, last.attempts, 0, None, True)
        oldest = min(current.pending.values()) if current.pending else None
        return Progress(current.number, current.kind, current.started_at, current.attempts,
                        len(current.pending), oldest, False)
