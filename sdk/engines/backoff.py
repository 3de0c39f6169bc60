"""How every retry loop of corral waits between attempts: one policy, `Backoff`.

A `Backoff` says how long a loop waits: `initial` before its first retry, each wait
`factor` times the last, never more than `cap` (truncated exponential backoff; a factor
of 1 retries at a fixed interval), and whether the wait is `jitter`ed: `Jitter.FULL`
waits a uniform random time up to the bound, so that many peers that started retrying
at once (agents after a master failover) do not retry in step. A loop keeps its own
progress in a `Retry` (`Backoff.retry()`), made afresh when the loop starts over.

The policy carries the random source (engines inject theirs, so a seeded simulator
replays the same waits) and the clock that measures deadlines for a loop that is not
handed the time (the engines are: they pass `now`).

Every loop uses it: the agent's registration, the scheduler driver's subscription and
kill retries, the reconciler's rounds, the executor driver's (re)registration, the ack
trackers' retransmissions (`corral.engines.status.ack_tracker`, whose compiled tracker
copies the policy's numbers into C fields) and the master detector.
"""
from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field
from typing import Callable


class Jitter(enum.Enum):
    """How a wait is drawn from its bound."""

    NONE = "none"  # the bound itself
    FULL = "full"  # uniform in [0, bound]


@dataclass(frozen=True)
class Backoff:
    """A retry policy: the first wait `initial`, each next one `factor` times longer, up
    to `cap`, drawn as `jitter` says from `random`; deadlines measured by `clock`."""

    initial: float
    cap: float
    factor: float = 2.0
    jitter: Jitter = Jitter.NONE
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"a backoff's initial wait must be positive, not {self.initial!r}")
        if not self.cap > 0:
            raise ValueError(f"a backoff's cap must be positive, not {self.cap!r}")
        if not self.factor >= 1:
            raise ValueError(f"a backoff's factor must be at least 1, not {self.factor!r}")

    def retry(self) -> Retry:
        """A loop's progress under this policy, from its first wait."""
        return Retry(self)


class Retry:
    """One retry loop's progress under a `Backoff`: each `delay` is the next wait, and
    the bound it is drawn from grows by the policy's factor up to its cap."""

    __slots__ = ("policy", "bound")

    def __init__(self, policy: Backoff) -> None:
        self.policy = policy
        #: what the next wait is drawn from
        self.bound = policy.initial

    def delay(self) -> float:
        """The next wait (the bound, jittered as the policy says); the bound grows."""
        policy = self.policy
        bound = self.bound
        self.bound = min(bound * policy.factor, policy.cap)
        if policy.jitter is Jitter.FULL:
            return policy.random.uniform(0, bound)
        return bound

    def next_deadline(self, now: float | None = None) -> float:
        """When the next attempt is due: `now` (the policy's clock when not given) plus
        the next wait."""
        return (self.policy.clock() if now is None else now) + self.delay()
