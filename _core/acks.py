"""Ack tracker: reliable, ordered status-update streams.

Owns the sender's side of at-least-once delivery: one stream per key (the users key
by (framework_id, task_id)), each a FIFO of pending updates identified by uuid. Only the
head of a stream is in flight; an ack for the head pops it and releases the next;
duplicate adds and stale acks are ignored; a head that is not acked in time is due for
retransmission, with truncated exponential backoff. Time is always passed in.

Sized for a million pending updates: a stream with one pending update and nothing acked
yet is one small object (no containers, no methods, so no vtable pointer in the compiled
build); the queue behind the head (one flat list) and the uuids seen (every pending
one, the last 64 to 128 acknowledged ones) are created only when a stream needs them.
The streams that have a head are themselves the items of a DeadlineHeap (heap.py), so
rescheduling a head is O(log n) and leaves no garbage.

One source for both builds: plain Python as is; compiled by Cython with acks.pxd.
"""
from __future__ import annotations

import enum

from .heap import DeadlineHeap, HeapItem


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
#: acknowledged uuids a stream remembers at least (and at most twice as many), to drop
#: retries of them: a sender retries only what it has not seen acknowledged, and sends
#: one update at a time (its stream's head), so an older uuid can only come back as a
#: stale copy
_ACKED_REMEMBERED = 64


class _Stream(HeapItem):
    """One key's updates. ``head_uuid`` is None when nothing is pending. The updates
    behind the head are ``rest[rest_pos:]`` as uuid, payload, uuid, payload, ...
    ``seen`` holds the uuids the stream has had, oldest first (a dict used as an ordered
    set): every pending one and the last acknowledged ones (see ``_remember``). It is None
    until the first ack or until more than _SCAN_LIMIT updates queue up, and while it
    is None the pending updates are the only uuids the stream has had. It is in the tracker's
    heap (``deadline``, ``heap_index``) while it has a head; ``seq`` stays 0.

    The operations on a stream are the module functions below, not methods: a compiled
    class with C methods carries a vtable pointer, 8 bytes per stream."""

    __slots__ = ("key", "head_uuid", "head_payload", "rest", "rest_pos", "seen", "backoff")


def _new_stream(key):
    """A stream with nothing pending. Made by ``__new__`` and filled in here rather than
    by an ``__init__``: the compiled class's base is in another module, so Cython cannot
    give ``_Stream(key)`` its fast (vectorcall) construction."""
    stream = _Stream.__new__(_Stream)
    stream.key = key
    stream.head_uuid = None
    stream.head_payload = None
    stream.rest = None
    stream.rest_pos = 0
    stream.seen = None
    stream.backoff = 0.0
    stream.seq = 0
    stream.heap_index = -1
    return stream


def _size(stream):
    if stream.head_uuid is None:
        return 0
    return 1 if stream.rest is None else 1 + (len(stream.rest) - stream.rest_pos) // 2


def _knows(stream, uuid):
    """Whether ``uuid`` is pending or was acked on this stream."""
    if stream.seen is not None:
        return uuid in stream.seen
    if stream.head_uuid == uuid:
        return True
    rest = stream.rest
    if rest is not None:
        for i in range(stream.rest_pos, len(rest), 2):
            if rest[i] == uuid:
                return True
    return False


def _pending_uuids(stream):
    uuids = {stream.head_uuid: None}
    if stream.rest is not None:
        for uuid in stream.rest[stream.rest_pos :: 2]:
            uuids[uuid] = None
    return uuids


def _remember(stream, uuid):
    """Add a new pending ``uuid`` to ``seen``. The oldest acknowledged uuids (the
    pending ones are the newest entries) are forgotten in bulk: once _ACKED_REMEMBERED
    more than the last _ACKED_REMEMBERED have built up, ``seen`` is rebuilt with those
    last ones. (Deleting the oldest entry one at a time leaves the dict's front full of
    dead slots that every later deletion walks past, and keeps the dict at its largest.)"""
    seen = stream.seen
    seen[uuid] = None
    keep = _size(stream) + 1 + _ACKED_REMEMBERED  # (``uuid`` is not counted pending yet)
    if len(seen) > keep + _ACKED_REMEMBERED:
        stream.seen = dict.fromkeys(list(seen)[-keep:])
    return 0


def _push(stream, uuid, payload):
    """Queue an update behind the head."""
    rest = stream.rest
    if rest is None:
        stream.rest = [uuid, payload]
    else:
        rest.append(uuid)
        rest.append(payload)
        if stream.seen is None and len(rest) - stream.rest_pos > 2 * _SCAN_LIMIT:
            stream.seen = _pending_uuids(stream)


def _pop(stream):
    """Drop the head; the next queued update (if any) becomes head. True if one did."""
    rest = stream.rest
    if rest is None:
        stream.head_uuid = None
        stream.head_payload = None
        return False
    pos = stream.rest_pos
    stream.head_uuid = rest[pos]
    stream.head_payload = rest[pos + 1]
    rest[pos] = None
    rest[pos + 1] = None
    pos += 2
    if pos == len(rest):
        stream.rest = None
        pos = 0
    elif pos >= 64 and 2 * pos >= len(rest):  # reclaim the popped prefix, amortised
        del rest[:pos]
        pos = 0
    stream.rest_pos = pos
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
        self._heap = DeadlineHeap()  # the streams that have a head, by deadline
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
            stream = _new_stream(key)
            self._streams[key] = stream
        elif _knows(stream, uuid):
            return _DUPLICATE
        elif stream.seen is not None:
            _remember(stream, uuid)
        self._pending += 1
        if stream.head_uuid is None:
            stream.head_uuid = uuid
            stream.head_payload = payload
            self._restart(stream, now)
            return _FORWARD
        _push(stream, uuid, payload)
        return _QUEUED

    def ack(self, key, uuid, now):
        """Acknowledge the head; the next update (if any) becomes head, deadline now + initial."""
        stream = self._streams.get(key)
        if stream is None:
            return _UNKNOWN
        if stream.head_uuid is None or stream.head_uuid != uuid:
            return _STALE
        if stream.seen is None:
            stream.seen = _pending_uuids(stream)
        self._pending -= 1
        if _pop(stream):
            self._restart(stream, now)
        else:
            self._heap.remove(stream)
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
        self._pending -= _size(stream)
        self._heap.remove(stream)

    def due(self, now):
        """Heads whose deadline is at or before ``now``, in deadline order, as
        (key, uuid, payload); each is rescheduled with its backoff doubled (capped)."""
        out = []
        if self._paused:
            return out
        heap = self._heap
        while True:
            stream = heap.top()
            if stream is None or stream.deadline > now:
                break
            out.append((stream.key, stream.head_uuid, stream.head_payload))
            stream.backoff = min(stream.backoff * 2.0, self._max)
            heap.schedule(stream, now + stream.backoff)
        return out

    def next_deadline(self):
        if self._paused:
            return None
        top = self._heap.top()
        return None if top is None else top.deadline

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
                # every head gets the same deadline, and seq is 0 for all of them: the
                # heap's order still holds without moving anything
                stream.deadline = deadline
                out.append((stream.key, stream.head_uuid, stream.head_payload))
        return out

    def _restart(self, stream, now):
        """(Re)schedule a new head: backoff back to initial, deadline now + initial."""
        stream.backoff = self._initial
        self._heap.schedule(stream, now + self._initial)
