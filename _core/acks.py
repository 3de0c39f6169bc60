"""Ack tracker: reliable, ordered status-update streams.

Owns the sender's side of at-least-once delivery: one stream per key (the users key
by (framework_id, task_id)), each a FIFO of pending updates identified by uuid. Only the
head of a stream is in flight; an ack for the head pops it and releases the next;
duplicate adds and stale acks are ignored; a head that is not acked in time is due for
retransmission, with truncated exponential backoff. Time is always passed in.

Sized for a million pending updates: a stream with one pending update and nothing acked
yet is one small object (no containers); the queue behind the head (one flat list) and
the set of uuids seen are created only when a stream needs them. Deadlines live in an indexed binary heap of the
streams themselves, so rescheduling a head is O(log n) and leaves no garbage.

One source for both builds: plain Python as is; compiled by Cython with acks.pxd.
"""
from __future__ import annotations

import enum


class AddResult(enum.IntEnum):
    FORWARD = 1  # the update is now the head of its stream: send it now
    QUEUED = 2  # it waits behind the head
    DUPLICATE = 3  # this uuid is already pending or was acked on this stream: dropped


class AckResult(enum.IntEnum):
    ACKED = 1  # the head was popped; head(key) is the next one to send, if any
    STALE = 2  # the stream exists but the uuid is not its head
    UNKNOWN = 3  # no such stream


_FORWARD = AddResult.FORWARD
_QUEUED = AddResult.QUEUED
_DUPLICATE = AddResult.DUPLICATE
_ACKED = AckResult.ACKED
_STALE = AckResult.STALE
_UNKNOWN = AckResult.UNKNOWN


_SCAN_LIMIT = 8  # queued updates checked for duplicates by a scan; beyond this, a set


class _Stream:
    """One key's updates. ``head_uuid`` is None when nothing is pending. The updates
    behind the head are ``rest[rest_pos:]`` as uuid, payload, uuid, payload, ...
    ``seen`` holds every uuid the stream has had (pending or acked); it is None until
    the first ack or until more than _SCAN_LIMIT updates queue up, and while it is None
    the pending updates are the only uuids the stream has had."""

    __slots__ = (
        "key", "head_uuid", "head_payload", "rest", "rest_pos", "seen", "deadline",
        "backoff", "heap_index",
    )

    def __init__(self, key):
        self.key = key
        self.head_uuid = None
        self.head_payload = None
        self.rest = None
        self.rest_pos = 0
        self.seen = None
        self.deadline = 0.0
        self.backoff = 0.0
        self.heap_index = -1

    def size(self):
        if self.head_uuid is None:
            return 0
        return 1 if self.rest is None else 1 + (len(self.rest) - self.rest_pos) // 2

    def knows(self, uuid):
        """Whether ``uuid`` is pending or was acked on this stream."""
        if self.seen is not None:
            return uuid in self.seen
        if self.head_uuid == uuid:
            return True
        rest = self.rest
        if rest is not None:
            for i in range(self.rest_pos, len(rest), 2):
                if rest[i] == uuid:
                    return True
        return False

    def pending_uuids(self):
        uuids = {self.head_uuid}
        if self.rest is not None:
            uuids.update(self.rest[self.rest_pos :: 2])
        return uuids

    def push(self, uuid, payload):
        """Queue an update behind the head."""
        rest = self.rest
        if rest is None:
            self.rest = [uuid, payload]
        else:
            rest.append(uuid)
            rest.append(payload)
            if self.seen is None and len(rest) - self.rest_pos > 2 * _SCAN_LIMIT:
                self.seen = self.pending_uuids()

    def pop(self):
        """Drop the head; the next queued update (if any) becomes head. True if one did."""
        rest = self.rest
        if rest is None:
            self.head_uuid = None
            self.head_payload = None
            return False
        pos = self.rest_pos
        self.head_uuid = rest[pos]
        self.head_payload = rest[pos + 1]
        rest[pos] = None
        rest[pos + 1] = None
        pos += 2
        if pos == len(rest):
            self.rest = None
            pos = 0
        elif pos >= 64 and 2 * pos >= len(rest):  # reclaim the popped prefix, amortised
            del rest[:pos]
            pos = 0
        self.rest_pos = pos
        return True


class AckTracker:
    """Pending status updates by stream, with retransmission deadlines."""

    def __init__(self, initial_backoff=10.0, max_backoff=600.0):
        if not initial_backoff > 0.0:
            raise ValueError("initial_backoff must be positive")
        if max_backoff < initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        self._initial = initial_backoff
        self._max = max_backoff
        self._streams = {}
        self._heap = []
        self._pending = 0
        self._paused = False

    def __len__(self):
        return self._pending

    def __contains__(self, key):
        return key in self._streams

    def stream_count(self):
        return len(self._streams)

    def add(self, key, uuid, payload, now):
        """Queue an update; FORWARD means it is the head now (deadline now + initial)."""
        stream = self._streams.get(key)
        if stream is None:
            stream = _Stream(key)
            self._streams[key] = stream
        elif stream.knows(uuid):
            return _DUPLICATE
        elif stream.seen is not None:
            stream.seen.add(uuid)
        self._pending += 1
        if stream.head_uuid is None:
            stream.head_uuid = uuid
            stream.head_payload = payload
            self._restart(stream, now)
            return _FORWARD
        stream.push(uuid, payload)
        return _QUEUED

    def ack(self, key, uuid, now):
        """Acknowledge the head; the next update (if any) becomes head, deadline now + initial."""
        stream = self._streams.get(key)
        if stream is None:
            return _UNKNOWN
        if stream.head_uuid is None or stream.head_uuid != uuid:
            return _STALE
        if stream.seen is None:
            stream.seen = stream.pending_uuids()
        self._pending -= 1
        if stream.pop():
            self._restart(stream, now)
        else:
            self._unschedule(stream)
        return _ACKED

    def head(self, key):
        stream = self._streams.get(key)
        if stream is None or stream.head_uuid is None:
            return None
        return (stream.head_uuid, stream.head_payload)

    def pending(self, key):
        stream = self._streams.get(key)
        if stream is None or stream.head_uuid is None:
            return []
        out = [(stream.head_uuid, stream.head_payload)]
        rest = stream.rest
        if rest is not None:
            out.extend(zip(rest[stream.rest_pos :: 2], rest[stream.rest_pos + 1 :: 2]))
        return out

    def remove(self, key):
        """Forget a stream, its pending updates and its acked-uuid memory (no-op if unknown)."""
        stream = self._streams.pop(key, None)
        if stream is None:
            return
        self._pending -= stream.size()
        self._unschedule(stream)

    def due(self, now):
        """Heads whose deadline is at or before ``now``, in deadline order, as
        (key, uuid, payload); each is rescheduled with its backoff doubled (capped)."""
        out = []
        if self._paused:
            return out
        heap = self._heap
        while heap:
            stream = heap[0]
            if stream.deadline > now:
                break
            out.append((stream.key, stream.head_uuid, stream.head_payload))
            stream.backoff = min(stream.backoff * 2.0, self._max)
            stream.deadline = now + stream.backoff
            self._sift_down(0)
        return out

    def next_deadline(self):
        if self._paused or not self._heap:
            return None
        top = self._heap[0]
        return top.deadline

    def pause(self):
        """No head is due until ``resume``."""
        self._paused = True

    def resume(self, now):
        """Return every head as (key, uuid, payload), to resend at once, and restart their
        backoff at initial (deadline now + initial)."""
        self._paused = False
        deadline = now + self._initial
        out = []
        for stream in self._streams.values():
            if stream.head_uuid is not None:
                stream.backoff = self._initial
                stream.deadline = deadline  # all equal: the heap order still holds
                out.append((stream.key, stream.head_uuid, stream.head_payload))
        return out

    # -- indexed binary min-heap of the streams that have a head, keyed by deadline --

    def _restart(self, stream, now):
        stream.backoff = self._initial
        stream.deadline = now + self._initial
        if stream.heap_index < 0:
            stream.heap_index = len(self._heap)
            self._heap.append(stream)
            self._sift_up(stream.heap_index)
        else:
            self._sift_down(self._sift_up(stream.heap_index))

    def _unschedule(self, stream):
        i = stream.heap_index
        if i >= 0:
            stream.heap_index = -1
            heap = self._heap
            last = heap.pop()
            if last is not stream:
                heap[i] = last
                last.heap_index = i
                self._sift_down(self._sift_up(i))

    def _sift_up(self, i):
        """Move heap[i] towards the root while it is earlier than its parent; return where
        it settled."""
        heap = self._heap
        item = heap[i]
        while i > 0:
            parent_index = (i - 1) >> 1
            parent = heap[parent_index]
            if parent.deadline <= item.deadline:
                break
            heap[i] = parent
            parent.heap_index = i
            i = parent_index
        heap[i] = item
        item.heap_index = i
        return i

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
                if right.deadline < child.deadline:
                    child_index += 1
                    child = right
            if item.deadline <= child.deadline:
                break
            heap[i] = child
            child.heap_index = i
            i = child_index
        heap[i] = item
        item.heap_index = i
