"""Ack tracker: reliable, ordered status-update streams.

Owns the sender's side of at-least-once delivery: one stream per key (the users key
by (framework_id, task_id)), each a FIFO of pending updates identified by uuid. Only the
head of a stream is in flight; an ack for the head pops it and releases the next;
duplicate adds and stale acks are ignored; a head that is not acked in time is due for
retransmission, with truncated exponential backoff. Time is always passed in.

Sized for a million pending updates: a stream with one pending update and nothing acked
yet is one small object (no containers); the uuid set and the queue behind the head are
created only when a stream needs them. Deadlines live in an indexed binary heap of the
streams themselves, so rescheduling a head is O(log n) and leaves no garbage.

One source for both builds: plain Python as is; compiled by Cython with acks.pxd.
"""
from __future__ import annotations

import collections
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


class _Stream:
    """One key's updates. ``head_uuid`` is None when nothing is pending. ``seen`` holds
    every uuid added to the stream (pending or acked) once the stream has had more than
    one; until then it is None and the head is the only uuid the stream has seen."""

    __slots__ = (
        "key", "head_uuid", "head_payload", "rest_uuids", "rest_payloads", "seen",
        "deadline", "backoff", "heap_index",
    )

    def __init__(self, key):
        self.key = key
        self.head_uuid = None
        self.head_payload = None
        self.rest_uuids = None
        self.rest_payloads = None
        self.seen = None
        self.deadline = 0.0
        self.backoff = 0.0
        self.heap_index = -1

    def size(self):
        if self.head_uuid is None:
            return 0
        return 1 if self.rest_uuids is None else 1 + len(self.rest_uuids)


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
        elif stream.seen is None:
            if stream.head_uuid == uuid:
                return _DUPLICATE
            stream.seen = {uuid, stream.head_uuid}
        elif uuid in stream.seen:
            return _DUPLICATE
        else:
            stream.seen.add(uuid)
        self._pending += 1
        if stream.head_uuid is None:
            stream.head_uuid = uuid
            stream.head_payload = payload
            self._restart(stream, now)
            return _FORWARD
        if stream.rest_uuids is None:
            stream.rest_uuids = collections.deque()
            stream.rest_payloads = collections.deque()
        stream.rest_uuids.append(uuid)
        stream.rest_payloads.append(payload)
        return _QUEUED

    def ack(self, key, uuid, now):
        """Acknowledge the head; the next update (if any) becomes head, deadline now + initial."""
        stream = self._streams.get(key)
        if stream is None:
            return _UNKNOWN
        if stream.head_uuid is None or stream.head_uuid != uuid:
            return _STALE
        if stream.seen is None:
            stream.seen = {uuid}
        self._pending -= 1
        if stream.rest_uuids:
            stream.head_uuid = stream.rest_uuids.popleft()
            stream.head_payload = stream.rest_payloads.popleft()
            self._restart(stream, now)
        else:
            stream.head_uuid = None
            stream.head_payload = None
            stream.rest_uuids = None
            stream.rest_payloads = None
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
        if stream.rest_uuids is not None:
            out.extend(zip(stream.rest_uuids, stream.rest_payloads))
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
