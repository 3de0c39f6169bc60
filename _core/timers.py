"""Timer queue: retry and timeout deadlines for many keys.

Owns "call me back at time t" for the runtimes: a binary min-heap of timers ordered by
(deadline, handle), so equal deadlines pop in scheduling order. Cancelling is O(1) and
lazy: the timer is marked dead and dropped when it reaches the top of the heap (or when
dead timers outnumber live ones, which triggers a rebuild). Time is always passed in.

One source for both builds: plain Python as is; compiled by Cython with timers.pxd.
"""
from __future__ import annotations

_COMPACT_MIN = 64  # rebuild only heaps with at least this many dead timers


class _Timer:
    __slots__ = ("deadline", "handle", "key", "live")

    def __init__(self, deadline, handle, key):
        self.deadline = deadline
        self.handle = handle
        self.key = key
        self.live = True


def _before(a, b):
    return a.deadline < b.deadline or (a.deadline == b.deadline and a.handle < b.handle)


class TimerQueue:
    """Deadlines keyed by handle; ``pop_due(now)`` returns the due keys in deadline order."""

    def __init__(self):
        self._heap = []
        self._live = {}
        self._next_handle = 1

    def __len__(self):
        return len(self._live)

    def schedule(self, deadline, key):
        """Fire ``key`` at ``deadline``; return a handle for ``cancel``."""
        handle = self._next_handle
        self._next_handle = handle + 1
        timer = _Timer(deadline, handle, key)
        self._live[handle] = timer
        self._heap.append(timer)
        self._sift_up(len(self._heap) - 1)
        return handle

    def cancel(self, handle):
        """Cancel a pending timer; False if it already fired, was cancelled or never was."""
        timer = self._live.pop(handle, None)
        if timer is None:
            return False
        timer.live = False
        timer.key = None
        dead = len(self._heap) - len(self._live)
        if dead >= _COMPACT_MIN and dead > len(self._live):
            self._compact()
        return True

    def pop_due(self, now):
        """Keys of the timers whose deadline is at or before ``now``, in deadline order."""
        out = []
        heap = self._heap
        while heap:
            timer = heap[0]
            if timer.live:
                if timer.deadline > now:
                    break
                out.append(timer.key)
                del self._live[timer.handle]
            self._pop_top()
        return out

    def next_deadline(self):
        heap = self._heap
        while heap:
            timer = heap[0]
            if timer.live:
                return timer.deadline
            self._pop_top()
        return None

    def _pop_top(self):
        heap = self._heap
        last = heap.pop()
        if heap:
            heap[0] = last
            self._sift_down(0)

    def _compact(self):
        self._heap = [timer for timer in self._heap if timer.live]
        for i in range((len(self._heap) - 2) // 2, -1, -1):
            self._sift_down(i)

    def _sift_up(self, i):
        heap = self._heap
        item = heap[i]
        while i > 0:
            parent_index = (i - 1) >> 1
            parent = heap[parent_index]
            if not _before(item, parent):
                break
            heap[i] = parent
            i = parent_index
        heap[i] = item

    def _sift_down(self, i):
        heap = self._heap
        n = len(heap)
        item = heap[i]
        while True:
            child_index = 2 * i + 1
            if child_index >= n:
                break
            child = heap[child_index]
            if child_index + 1 < n:
                right = heap[child_index + 1]
                if _before(right, child):
                    child_index += 1
                    child = right
            if not _before(child, item):
                break
            heap[i] = child
            i = child_index
        heap[i] = item
