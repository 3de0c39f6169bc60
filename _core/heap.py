"""Deadline heap: the indexed binary min-heap under AckTracker and TimerQueue.

Owns the ordering of deadlines: items (subclasses of HeapItem) are kept in a binary
min-heap ordered by (deadline, seq), and each item knows its own slot (``heap_index``,
-1 while it is not in the heap), so rescheduling or removing any item is O(log n) and
leaves nothing behind. ``seq`` breaks ties between equal deadlines, lowest first; the
owner sets it before the item's first ``schedule`` and never changes it while the item
is in the heap (TimerQueue numbers its timers, so equal deadlines pop in scheduling
order; AckTracker leaves it 0).

One source for both builds: plain Python as is; compiled by Cython with heap.pxd. The
items are the owners' subclasses, so in the compiled build every item read from the list
into a HeapItem variable would be type-tested by walking the subclass's MRO; the sift
loops cast instead (``_COMPILED`` branches), which keeps them as fast as a heap of one
exact type.
"""
from __future__ import annotations

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False


class HeapItem:
    """What the heap orders; the owners subclass it. Whoever makes an item sets its
    ``heap_index`` to -1 and its ``seq``; ``schedule`` writes ``deadline``."""

    __slots__ = ("deadline", "seq", "heap_index")


class DeadlineHeap:
    """Items by (deadline, seq), earliest first."""

    def __init__(self):
        self._items = []

    def __len__(self):
        return len(self._items)

    def top(self):
        """The earliest item (it stays in the heap), or None when the heap is empty."""
        items = self._items
        return items[0] if items else None

    def schedule(self, item, deadline):
        """Give ``item`` this deadline: insert it, or move it if it is in the heap."""
        i = item.heap_index
        if i < 0:
            item.deadline = deadline
            self._items.append(item)
            self._sift_up(item, len(self._items) - 1)
        elif deadline < item.deadline:
            item.deadline = deadline
            self._sift_up(item, i)
        else:
            item.deadline = deadline
            self._sift_down(item, i)

    def remove(self, item):
        """Take ``item`` out of the heap; False if it was not in it."""
        i = item.heap_index
        if i < 0:
            return False
        item.heap_index = -1
        items = self._items
        last = items.pop()
        if last is not item:
            self._sift_down(last, self._sift_up(last, i))
        return True

    def clear(self):
        """Take every item out of the heap."""
        for item in self._items:
            item.heap_index = -1
        self._items = []

    def pop(self):
        """Take the earliest item out of the heap and return it (the heap is not empty)."""
        items = self._items
        item = items[0]
        item.heap_index = -1
        last = items.pop()
        if last is not item:
            self._sift_down(last, 0)
        return item

    def _sift_up(self, item, i):
        """Put ``item`` in slot ``i``, then move it towards the root while it is before
        its parent; return the slot where it settled."""
        items = self._items
        deadline = item.deadline
        seq = item.seq
        while i > 0:
            parent_index = (i - 1) >> 1
            if _COMPILED:
                parent = cython.cast(HeapItem, items[parent_index])
            else:
                parent = items[parent_index]
            if parent.deadline < deadline or (parent.deadline == deadline and parent.seq <= seq):
                break
            items[i] = parent
            parent.heap_index = i
            i = parent_index
        items[i] = item
        item.heap_index = i
        return i

    def _sift_down(self, item, i):
        """Put ``item`` in slot ``i``, then move it towards the leaves while a child is
        before it."""
        items = self._items
        n = len(items)
        deadline = item.deadline
        seq = item.seq
        while True:
            child_index = 2 * i + 1
            if child_index >= n:
                break
            if _COMPILED:
                child = cython.cast(HeapItem, items[child_index])
            else:
                child = items[child_index]
            if child_index + 1 < n:
                if _COMPILED:
                    right = cython.cast(HeapItem, items[child_index + 1])
                else:
                    right = items[child_index + 1]
                if right.deadline < child.deadline or (
                    right.deadline == child.deadline and right.seq < child.seq
                ):
                    child_index += 1
                    child = right
            if deadline < child.deadline or (deadline == child.deadline and seq <= child.seq):
                break
            items[i] = child
            child.heap_index = i
            i = child_index
        items[i] = item
        item.heap_index = i
