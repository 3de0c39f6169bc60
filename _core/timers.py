"""Timer queue: retry and timeout deadlines for many keys, and the clock they are read
against.

Owns "call me back at time t" for the runtimes: the timers are the items of a
DeadlineHeap (heap.py) ordered by (deadline, handle), so equal deadlines pop in
scheduling order. Cancelling takes the timer out of the heap at once, in O(log n).
Time is always passed in: the runtimes read it from a `MonotonicClock`, which never
steps (see `corral.runtime.clock`).

One source for both builds: plain Python as is; compiled by Cython with timers.pxd.
"""
from __future__ import annotations

import time

from .heap import DeadlineHeap, HeapItem

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # pragma: no cover (the pure build without Cython installed)
    _COMPILED = False


class MonotonicClock:
    """``offset`` plus the system's monotonic clock (CLOCK_MONOTONIC, as
    ``time.monotonic``): seconds that never step. Calling it is a C call in the compiled
    build (the runtimes' dispatch reads the clock for every message)."""

    __slots__ = ("offset",)

    def __init__(self, offset):
        self.offset = offset

    def __call__(self):
        if _COMPILED:
            clock_gettime(CLOCK_MONOTONIC, cython.address(_now))
            return self.offset + (_now.tv_sec + _now.tv_nsec * 1e-9)
        return self.offset + time.monotonic()


class _Timer(HeapItem):
    """One scheduled key; its heap ``seq`` is its handle. Made by ``__new__`` and filled
    in by ``schedule``: the compiled class's base is in another module, so Cython cannot
    give a ``_Timer(...)`` call its fast (vectorcall) construction."""

    __slots__ = ("key",)


class TimerQueue:
    """Deadlines keyed by handle; ``pop_due(now)`` returns the due keys in deadline order."""

    def __init__(self):
        self._heap = DeadlineHeap()
        self._live = {}  # handle -> its pending _Timer
        self._next_handle = 1

    def __len__(self):
        return len(self._live)

    def schedule(self, deadline, key):
        """Fire ``key`` at ``deadline``; return a handle for ``cancel``."""
        handle = self._next_handle
        self._next_handle = handle + 1
        timer = _Timer.__new__(_Timer)
        timer.key = key
        timer.seq = handle
        timer.heap_index = -1
        self._live[handle] = timer
        self._heap.schedule(timer, deadline)
        return handle

    def cancel(self, handle):
        """Cancel a pending timer; False if it already fired, was cancelled or never was."""
        timer = self._live.pop(handle, None)
        if timer is None:
            return False
        self._heap.remove(timer)
        return True

    def pop_due(self, now):
        """Keys of the timers whose deadline is at or before ``now``, in deadline order."""
        out = []
        heap = self._heap
        while True:
            timer = heap.top()
            if timer is None or timer.deadline > now:
                break
            heap.pop()
            del self._live[timer.seq]
            out.append(timer.key)
        return out

    def next_deadline(self):
        top = self._heap.top()
        return None if top is None else top.deadline
