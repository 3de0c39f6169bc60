"""Shared variables: broadcast values (read-only, shipped once to each executor) and
accumulators (tasks add to them, the driver reads the sum).

A `Broadcast` pickles as its id only: when the driver pickles a stage, the ids met are
collected (`collect_broadcasts`) so the values go to each executor before the stage's
first task; there the id is looked up in the executor's store. An `Accumulator`
pickles as (id, zero, add): inside a task, `add` goes to the running task's updates,
which travel back with its result and are merged into the driver's value once per
successful partition."""
from __future__ import annotations

import contextlib
import copy
import threading
from typing import Any, Callable, Iterator

from corral.examples.spark import serde

_local = threading.local()


def current_task() -> Any:
    """The `TaskContext` the calling thread runs, or None (the driver)."""
    return getattr(_local, "task", None)


def set_current_task(task: Any) -> None:
    _local.task = task


@contextlib.contextmanager
def collect_broadcasts() -> Iterator[set[str]]:
    """Within this block, every Broadcast pickled records its id in the set it yields."""
    outer = getattr(_local, "broadcasts", None)
    ids: set[str] = set()
    _local.broadcasts = ids
    try:
        yield ids
    finally:
        _local.broadcasts = outer


class BroadcastStore:
    """An executor's broadcast values: pickled bytes from the driver, unpickled once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}
        self._values: dict[str, Any] = {}

    def put(self, broadcast_id: str, blob: bytes) -> None:
        with self._lock:
            self._blobs[broadcast_id] = blob

    def drop(self, broadcast_id: str) -> None:
        with self._lock:
            self._blobs.pop(broadcast_id, None)
            self._values.pop(broadcast_id, None)

    def get(self, broadcast_id: str) -> Any:
        with self._lock:
            if broadcast_id in self._values:
                return self._values[broadcast_id]
            blob = self._blobs.get(broadcast_id)
            if blob is None:
                raise LookupError(f"broadcast {broadcast_id} is not on this executor (was it unpersisted?)")
            value = self._values[broadcast_id] = serde.loads(blob)
            return value


class Broadcast:
    """A read-only value every task can use through `.value`."""

    def __init__(self, broadcast_id: str, value: Any, blob: bytes, on_unpersist: Callable[[str], None] | None) -> None:
        self.id = broadcast_id
        self._value = value
        self.blob = blob
        self._on_unpersist = on_unpersist

    @property
    def value(self) -> Any:
        task = current_task()
        if task is not None and self._on_unpersist is None:
            return task.executor.broadcasts.get(self.id)
        return self._value

    def unpersist(self) -> None:
        """Drop the value from the executors (the driver keeps it)."""
        if self._on_unpersist is not None:
            self._on_unpersist(self.id)

    def __reduce__(self) -> tuple[Any, ...]:
        ids = getattr(_local, "broadcasts", None)
        if ids is not None:
            ids.add(self.id)
        return _executor_broadcast, (self.id,)

    def __repr__(self) -> str:
        return f"<Broadcast {self.id}>"


def _executor_broadcast(broadcast_id: str) -> Broadcast:
    return Broadcast(broadcast_id, None, b"", None)


class Accumulator:
    """Tasks `add` to it; the driver reads `value` (the sum of the successful tasks'
    additions to the initial value)."""

    def __init__(self, accumulator_id: str, value: Any, add: Callable[[Any, Any], Any], zero: Any) -> None:
        self.id = accumulator_id
        self._value = value
        self._add = add
        self._zero = zero

    def add(self, term: Any) -> None:
        task = current_task()
        if task is None:
            self._value = self._add(self._value, term)
            return
        updates = task.accumulators
        current = updates.get(self.id, _NONE)
        if current is _NONE:
            current = copy.copy(self._zero)
        updates[self.id] = self._add(current, term)

    def __iadd__(self, term: Any) -> "Accumulator":
        self.add(term)
        return self

    @property
    def value(self) -> Any:
        if current_task() is not None:
            raise RuntimeError("an accumulator's value can be read only by the driver")
        return self._value

    def merge(self, update: Any) -> None:
        """The driver takes a task's update."""
        self._value = self._add(self._value, update)

    def __reduce__(self) -> tuple[Any, ...]:
        return Accumulator, (self.id, None, self._add, self._zero)

    def __repr__(self) -> str:
        return f"<Accumulator {self.id}>"


_NONE = object()


def default_zero(value: Any) -> Any:
    """The zero of `value`'s type (0, 0.0, [], ...) for accumulators made without one."""
    try:
        return type(value)()
    except TypeError as exc:
        raise TypeError(f"no zero for an accumulator of type {type(value).__name__}: pass zero=...") from exc

