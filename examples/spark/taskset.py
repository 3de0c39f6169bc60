"""The tasks of one running stage, as the task scheduler hands them out.

Partitions wait in stacks: one per executor that holds what they read (a cached
partition, a large share of their shuffle input), one for those with no preference, and
one for all. An executor asking for work gets one of its own first, then one without
preference, and one that prefers another executor only once `locality_wait` has passed
since the last local launch (delay scheduling). Entries are removed lazily: a partition
popped from one stack stays in the others until they reach it.

A failed partition is queued again and kept off the executors it failed on while others
are alive; speculation (when enabled) marks partitions running much longer than the
median as worth a second copy."""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable


@dataclass
class SchedulingConfig:
    #: attempts of one partition before its job fails
    max_task_failures: int = 4
    #: seconds a partition waits for its preferred executor
    locality_wait: float = 3.0
    speculation: bool = False
    #: fraction of a stage's tasks done before stragglers are speculated on
    speculation_quantile: float = 0.75
    #: a straggler runs this many times the median task's duration
    speculation_multiplier: float = 1.5
    #: ... and at least this many seconds
    speculation_min_seconds: float = 0.1


@dataclass(eq=False)
class Attempt:
    task_id: int
    taskset: "TaskSet"
    split: int
    executor_id: str
    started: float
    number: int
    speculative: bool = False


class TaskSet:
    def __init__(self, stage: Any, config: SchedulingConfig, now: float) -> None:
        self.stage = stage
        self.config = config
        self.queued: set[int] = set()
        self.prefs: dict[int, list[str]] = {}
        self._local: dict[str, list[int]] = {}
        self._no_prefs: list[int] = []
        self._anywhere: list[int] = []
        self.running: dict[int, list[Attempt]] = {}
        self.failures: Counter[int] = Counter()
        self.attempts: Counter[int] = Counter()
        self.excluded: dict[int, set[str]] = {}
        self.paused = False
        self.removed = False
        self.last_local_launch = now
        self.durations: list[float] = []
        self.speculatable: set[int] = set()
        #: partitions ever queued here (what the speculation quantile is of)
        self.size = 0

    def add(self, splits: Iterable[int], prefs_of: Callable[[int], list[str]]) -> None:
        """Queue `splits` (those not queued or running already), lowest first."""
        for split in sorted(splits, reverse=True):
            if split in self.queued or split in self.running:
                continue
            if split not in self.prefs:
                self.size += 1
            self.prefs[split] = prefs_of(split)
            self._push(split)

    def requeue(self, split: int) -> None:
        """Queue a partition again (its attempt failed or was lost) unless a copy runs."""
        if split not in self.queued and split not in self.running:
            self._push(split)

    def _push(self, split: int) -> None:
        self.queued.add(split)
        prefs = self.prefs.get(split, [])
        for executor_id in prefs:
            self._local.setdefault(executor_id, []).append(split)
        (self._anywhere if prefs else self._no_prefs).append(split)

    def has_queued(self) -> bool:
        return bool(self.queued or self.speculatable)

    def next_for(self, executor_id: str, alive: int, now: float) -> tuple[int, bool] | None:
        """(partition, speculative) for `executor_id` to run now, or None."""
        if self.paused:
            return None
        local = self._local.get(executor_id)
        if local:
            split = self._pop(local, executor_id, alive)
            if split is not None:
                self.last_local_launch = now
                return split, False
        split = self._pop(self._no_prefs, executor_id, alive)
        if split is None and self._anywhere and self.last_local_launch + self.config.locality_wait <= now + 1e-6:
            split = self._pop(self._anywhere, executor_id, alive)
        if split is not None:
            return split, False
        for split in sorted(self.speculatable):
            if all(a.executor_id != executor_id for a in self.running.get(split, ())):
                self.speculatable.discard(split)
                return split, True
        return None

    def locality_deadline(self) -> float | None:
        """When partitions waiting for their executors may go anywhere."""
        if self.paused or not self._anywhere or not self.queued:
            return None
        return self.last_local_launch + self.config.locality_wait

    def _pop(self, stack: list[int], executor_id: str, alive: int) -> int | None:
        skipped = []
        found = None
        while stack:
            split = stack.pop()
            if split not in self.queued:
                continue  # launched through another stack
            excluded = self.excluded.get(split)
            if excluded and executor_id in excluded and len(excluded) < alive:
                skipped.append(split)
                continue
            found = split
            break
        stack.extend(reversed(skipped))
        if found is not None:
            self.queued.discard(found)
        return found

    def launched(self, attempt: Attempt) -> None:
        self.running.setdefault(attempt.split, []).append(attempt)
        self.attempts[attempt.split] += 1

    def ended(self, attempt: Attempt) -> None:
        attempts = self.running.get(attempt.split)
        if attempts and attempt in attempts:
            attempts.remove(attempt)
            if not attempts:
                del self.running[attempt.split]
                self.speculatable.discard(attempt.split)

    def failed(self, attempt: Attempt) -> int:
        """Count a failure of the user's code; the partition's failures so far."""
        self.failures[attempt.split] += 1
        self.excluded.setdefault(attempt.split, set()).add(attempt.executor_id)
        return self.failures[attempt.split]

    def check_speculation(self, now: float) -> bool:
        """Mark stragglers; True if any was newly marked."""
        if not self.config.speculation or not self.durations or not self.running:
            return False
        if len(self.durations) < self.config.speculation_quantile * self.size:
            return False
        threshold = max(self.config.speculation_multiplier * statistics.median(self.durations),
                        self.config.speculation_min_seconds)
        marked = False
        for split, attempts in self.running.items():
            if len(attempts) == 1 and split not in self.speculatable and now - attempts[0].started > threshold:
                self.speculatable.add(split)
                marked = True
        return marked
