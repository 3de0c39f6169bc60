"""Ack tracker: reliable, ordered status-update streams; and the compact memory of
recent uuids that both ends of a stream de-duplicate with.

Owns the sender's side of at-least-once delivery: one stream per key (the users key
by (framework_id, task_id)), each a FIFO of pending updates identified by uuid. Only the
head of a stream is in flight; an ack for the head pops it and releases the next;
duplicate adds and stale acks are ignored; a head that is not acked in time is due for
retransmission, with truncated exponential backoff. Time is always passed in.

Deadlines: a new head is due at now + initial, and since time moves forward those
deadlines arrive in the order they are set, so fresh heads wait in one FIFO (a linked
list through the streams: adding, moving and removing one is O(1) and touches at most
its two neighbours). Only what breaks that order, a retried head (its backoff doubled)
or a deadline set earlier than the newest one (the clock went back), goes into a
DeadlineHeap (heap.py), O(log n).

Sized for a million pending updates and for tens of thousands of long-lived streams: a
stream with one pending update and nothing acked yet is one small object; the queue
behind the head (one flat list), a set of the pending uuids (only while more than
_SCAN_LIMIT queue up) and the memory of the last acknowledged uuids (a RecentUuids,
from the first ack on) are created only when a stream needs them.

One source for both builds: plain Python as is; compiled by Cython with acks.pxd.
"""
from __future__ import annotations

import enum

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

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
#: the most uuids a RecentUuids holds, and how many acknowledged uuids a stream
#: remembers by default, to drop retries of them: a sender retries only what it has not
#: seen acknowledged, and sends one update at a time (its stream's head), so an older
#: uuid can only come back as a stale copy
RECENT_MAX = 64
#: the size of the uuids corral makes (RecentUuids keeps these inline)
UUID_SIZE = 16
#: the slots a RecentUuids keeps inside itself (the compiled build), and each slot's
#: bytes there: a tag, a flag and a uuid
SMALL_SLOTS = 4
_SLOT_BYTES = 2 + UUID_SIZE
_NO_HASHES = (0,) * RECENT_MAX  # the pure-Python twin's empty arrays


def _tag(h):
    """A slot's tag for a uuid of hash ``h``: 1 to 255 (0 marks an empty slot)."""
    return (h & 0x7FFFFFFF) % 255 + 1


def _pure_arrays(recent, capacity):
    """The pure-Python twin's arrays of `recent`: lists of all `capacity` slots."""
    recent._size = capacity
    recent._tags = list(_NO_HASHES)
    recent._flags = list(_NO_HASHES)
    recent._uuids = [None] * capacity


class RecentUuids:
    """The last ``capacity`` uuids added (1 to RECENT_MAX), the oldest forgotten first,
    each with a flag (the scheduler driver's "acknowledged yet"). Looking one up scans
    a byte per slot (a tag from the uuid's hash, 0 when the slot is empty: one cache line
    for all 64), and compares the uuid itself only where its tag matches. The compiled
    build keeps tags, flags and the 16-byte uuids corral makes in C arrays, 18 bytes a
    slot, with no reference to their bytes objects (a dict, or a list of references,
    would take kilobytes in scattered places, and every uuid forgotten would touch its
    object to free it); a uuid of another size or type is kept by reference. Its arrays
    hold as many slots as have been used: the first SMALL_SLOTS inside the object, then
    doubled on the heap up to ``capacity`` (most tasks see a few updates: a full-size
    memory for each would take 1.2 kB and many cache lines). A slot is -1 ..
    capacity-1."""

    __slots__ = ("capacity", "_next", "_size", "_tags", "_flags", "_inline", "_uuids")

    def __init__(self, capacity=RECENT_MAX):
        if not 0 < capacity <= RECENT_MAX:
            raise ValueError(f"a RecentUuids holds 1 to {RECENT_MAX} uuids, not {capacity}")
        self._fill(capacity)

    @staticmethod
    def of(capacity):
        """A RecentUuids for a capacity already checked, made without the type's call
        (which parses its arguments): a C call in the compiled build."""
        recent = RecentUuids.__new__(RecentUuids)
        recent._fill(capacity)
        return recent

    def _fill(self, capacity):
        self.capacity = capacity
        self._next = 0  # the slot the next uuid goes to (the oldest one's)
        # the uuids kept by reference, by slot (None where a slot is empty or inline):
        # in the compiled build only once a uuid is not 16 bytes
        self._uuids = None
        if _COMPILED:  # the object's own slots (emptied: `__init__` may run again)
            PyMem_Free(self._heap)
            self._heap = cython.NULL
            memset(self._small, 0, SMALL_SLOTS * _SLOT_BYTES)
            self._size = min(capacity, SMALL_SLOTS)
            self._place(self._small, self._size)
        else:
            _pure_arrays(self, capacity)
        return 0

    def _place(self, block, size):
        """Compiled build only: point the arrays into `block`, of `size` slots (tags,
        then flags, then uuids)."""
        self._tags = block
        self._flags = cython.cast(cython.p_char, block + size)
        self._inline = block + 2 * size
        return 0

    def _grow(self):
        """Compiled build only: double the slots (at most `capacity`), on the heap."""
        size = min(self.capacity, 2 * self._size)
        block = cython.cast(cython.p_uchar, PyMem_Malloc(size * _SLOT_BYTES))
        if block == cython.NULL:
            raise MemoryError()
        memset(block, 0, size * _SLOT_BYTES)
        memcpy(block, self._tags, self._size)
        memcpy(block + size, self._flags, self._size)
        memcpy(block + 2 * size, self._inline, self._size * UUID_SIZE)
        PyMem_Free(self._heap)  # (NULL while the slots were the object's own)
        self._heap = block
        self._size = size
        self._place(block, size)
        return 0

    def __dealloc__(self):  # (Cython's: called by the compiled build only)
        PyMem_Free(self._heap)

    def __len__(self):
        return sum(1 for i in range(self._size) if self._tags[i] != 0)

    def __iter__(self):
        """The uuids remembered, oldest first."""
        out = []
        for n in range(self.capacity):
            i = (self._next + n) % self.capacity
            if i < self._size and self._tags[i] != 0:
                out.append(self._held(i))
        return iter(out)

    def __contains__(self, uuid):
        return self.find(uuid) >= 0

    def _held(self, i):
        """The uuid in the occupied slot ``i``."""
        if self._uuids is not None and self._uuids[i] is not None:
            return self._uuids[i]
        return PyBytes_FromStringAndSize(cython.cast(cython.p_char, self._inline) + i * UUID_SIZE, UUID_SIZE)

    def find(self, uuid):
        """The slot holding ``uuid``, or -1."""
        tag = _tag(hash(uuid))
        inline = _COMPILED and type(uuid) is bytes and len(uuid) == UUID_SIZE
        uuids = self._uuids
        i = 0
        while i < self._size:
            if _COMPILED:  # (the next slot with this tag, found by memchr: no loop over 64 bytes)
                at = cython.cast(cython.p_uchar, memchr(self._tags + i, tag, self._size - i))
                if at == cython.NULL:
                    return -1
                i = at - self._tags
            if self._tags[i] == tag:
                if uuids is not None and uuids[i] is not None:
                    held = uuids[i]
                    if held is uuid or held == uuid:
                        return i
                elif inline and memcmp(self._inline + i * UUID_SIZE, PyBytes_AS_STRING(uuid), UUID_SIZE) == 0:
                    return i
            i += 1
        return -1

    def add(self, uuid, flag):
        """Remember ``uuid`` (not checked for: the caller has looked it up) with ``flag``,
        in place of the oldest; returns its slot."""
        i = self._next
        if i == self._size:  # (every slot used, none forgotten yet: compiled build only)
            self._grow()
        self._tags[i] = _tag(hash(uuid))
        self._flags[i] = 1 if flag else 0
        if _COMPILED and type(uuid) is bytes and len(uuid) == UUID_SIZE:
            memcpy(self._inline + i * UUID_SIZE, PyBytes_AS_STRING(uuid), UUID_SIZE)
            if self._uuids is not None:
                self._uuids[i] = None
        else:
            if self._uuids is None:
                self._uuids = [None] * self.capacity
            self._uuids[i] = uuid
        self._next = i + 1 if i + 1 < self.capacity else 0
        return i

    def _slot(self, i):
        """``i``, checked to be a slot in use (else IndexError: a wrong slot would reach
        past the compiled build's arrays)."""
        if not 0 <= i < self._size:
            raise IndexError(f"slot {i} of a RecentUuids with {self._size} in use")
        return i

    def flagged(self, i):
        return self._flags[self._slot(i)] != 0

    def set_flag(self, i):
        self._flags[self._slot(i)] = 1

    def forget(self, i):
        """Empty slot ``i`` (its uuid is no longer remembered)."""
        i = self._slot(i)
        self._tags[i] = 0
        self._flags[i] = 0
        if self._uuids is not None:
            self._uuids[i] = None


class _Stream(HeapItem):
    """One key's updates. ``head_uuid`` is None when nothing is pending. The updates
    behind the head are ``rest[rest_pos:]`` as uuid, payload, uuid, payload, ...
    ``pending`` is the set of every pending uuid while more than _SCAN_LIMIT are queued
    (None otherwise: they are scanned); ``acked`` remembers the last acknowledged uuids
    (None until the first ack).

    A stream with a head has a deadline: it is either in the tracker's FIFO of fresh
    heads (``in_fifo``, linked by ``prev`` and ``next``) or in its heap (``heap_index``
    >= 0; ``seq`` stays 0). The operations on a stream are the module functions below,
    not methods: a compiled class with C methods carries a vtable pointer, 8 bytes per
    stream."""

    __slots__ = ("key", "head_uuid", "head_payload", "rest", "rest_pos", "pending", "acked",
                 "backoff", "in_fifo", "prev", "next")


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
    stream.pending = None
    stream.acked = None
    stream.backoff = 0.0
    stream.in_fifo = False
    stream.prev = None
    stream.next = None
    stream.seq = 0
    stream.heap_index = -1
    return stream


def _size(stream):
    if stream.head_uuid is None:
        return 0
    return 1 if stream.rest is None else 1 + (len(stream.rest) - stream.rest_pos) // 2


def _knows(stream, uuid):
    """Whether ``uuid`` is pending or was acked recently on this stream."""
    if stream.head_uuid is not None:
        if stream.pending is not None:
            if uuid in stream.pending:
                return True
        else:
            if stream.head_uuid == uuid:
                return True
            rest = stream.rest
            if rest is not None:
                for i in range(stream.rest_pos, len(rest), 2):
                    if rest[i] == uuid:
                        return True
    return stream.acked is not None and stream.acked.find(uuid) >= 0


def _push(stream, uuid, payload):
    """Queue an update behind the head."""
    rest = stream.rest
    if rest is None:
        stream.rest = [uuid, payload]
        return 0
    rest.append(uuid)
    rest.append(payload)
    if stream.pending is not None:
        stream.pending.add(uuid)
    elif len(rest) - stream.rest_pos > 2 * _SCAN_LIMIT:
        pending = set(rest[stream.rest_pos :: 2])
        pending.add(stream.head_uuid)
        stream.pending = pending
    return 0


def _pop(stream, remember):
    """Drop the head (remembered as acknowledged, among the last ``remember``); the next
    queued update (if any) becomes head. True if one did."""
    if remember:
        acked = stream.acked
        if acked is None:
            acked = RecentUuids.of(remember)
            stream.acked = acked
        acked.add(stream.head_uuid, False)
    rest = stream.rest
    if rest is None:
        stream.head_uuid = None
        stream.head_payload = None
        stream.pending = None
        return False
    if stream.pending is not None:
        stream.pending.discard(stream.head_uuid)
    pos = stream.rest_pos
    stream.head_uuid = rest[pos]
    stream.head_payload = rest[pos + 1]
    rest[pos] = None
    rest[pos + 1] = None
    pos += 2
    if pos == len(rest):
        stream.rest = None
        stream.pending = None
        pos = 0
    elif pos >= 64 and 2 * pos >= len(rest):  # reclaim the popped prefix, amortised
        del rest[:pos]
        pos = 0
    stream.rest_pos = pos
    return True


class AckTracker:
    """Pending status updates by stream, with retransmission deadlines."""

    def __init__(self, initial_backoff=10.0, max_backoff=600.0, remember=RECENT_MAX, factor=2.0):
        """A head is retried `initial_backoff` seconds after it became the head, then
        after each wait `factor` times the last, up to `max_backoff` (the numbers of the
        engines' retry policy, `corral.engines.backoff.Backoff`, never jittered here).
        ``remember``: how many acknowledged uuids a stream keeps, to drop retries of
        them (0 to RECENT_MAX; 0 for a sender whose uuids never come back to it)."""
        if not initial_backoff > 0.0:
            raise ValueError("initial_backoff must be positive")
        if max_backoff < initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        if not factor >= 1.0:
            raise ValueError(f"a backoff factor is at least 1, not {factor!r}")
        if not 0 <= remember <= RECENT_MAX:
            raise ValueError(f"a stream remembers 0 to {RECENT_MAX} acknowledged uuids, not {remember}")
        self._remember = remember
        self._initial = initial_backoff
        self._max = max_backoff
        self._factor = factor
        self._streams = {}
        #: fresh heads (deadline now + initial), earliest first
        self._first = None
        self._last = None
        #: the other heads (retried, or set out of order), by deadline
        self._heap = DeadlineHeap()
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
        return self.ack_next(key, uuid, now)[0]

    def ack_next(self, key, uuid, now):
        """`ack`, and what follows: (ACKED, the new head's payload, or None when nothing
        is pending), (STALE, None) or (UNKNOWN, None). One lookup for both."""
        stream = self._streams.get(key)
        if stream is None:
            return (_UNKNOWN, None)
        if stream.head_uuid is None or stream.head_uuid != uuid:
            return (_STALE, None)
        self._pending -= 1
        if _pop(stream, self._remember):
            self._restart(stream, now)
            return (_ACKED, stream.head_payload)
        self._unschedule(stream)
        return (_ACKED, None)

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
        self._unschedule(stream)

    def due(self, now):
        """Heads whose deadline is at or before ``now``, in deadline order, as
        (key, uuid, payload); each is rescheduled with its backoff grown by the factor
        (capped)."""
        out = []
        if self._paused:
            return out
        heap = self._heap
        while True:
            first = self._first
            top = heap.top()
            if first is not None and first.deadline <= now and (top is None or first.deadline <= top.deadline):
                stream = first
                self._unlink(stream)
            elif top is not None and top.deadline <= now:
                stream = top
            else:
                break
            out.append((stream.key, stream.head_uuid, stream.head_payload))
            stream.backoff = min(stream.backoff * self._factor, self._max)
            heap.schedule(stream, now + stream.backoff)
        return out

    def next_deadline(self):
        if self._paused:
            return None
        first = self._first
        top = self._heap.top()
        if first is None:
            return None if top is None else top.deadline
        if top is None or first.deadline <= top.deadline:
            return first.deadline
        return top.deadline

    def pause(self):
        """No head is due until ``resume``."""
        self._paused = True

    def resume(self, now):
        """Return every head as (key, uuid, payload), to resend at once, and restart their
        backoff at initial (deadline now + initial)."""
        self._paused = False
        deadline = now + self._initial
        self._heap.clear()
        while self._first is not None:
            self._unlink(self._first)
        out = []
        for stream in self._streams.values():
            if stream.head_uuid is not None:
                stream.backoff = self._initial
                stream.deadline = deadline
                self._append(stream)
                out.append((stream.key, stream.head_uuid, stream.head_payload))
        return out

    # -- deadlines ---------------------------------------------------------------------
    def _restart(self, stream, now):
        """(Re)schedule a new head: backoff back to initial, deadline now + initial, at
        the end of the FIFO (in the heap when that would put it before the last one)."""
        stream.backoff = self._initial
        deadline = now + self._initial
        if stream.in_fifo:
            self._unlink(stream)
        last = self._last
        if last is None or last.deadline <= deadline:
            self._heap.remove(stream)
            stream.deadline = deadline
            self._append(stream)
        else:
            self._heap.schedule(stream, deadline)
        return 0

    def _unschedule(self, stream):
        if stream.in_fifo:
            self._unlink(stream)
        else:
            self._heap.remove(stream)
        return 0

    def _append(self, stream):
        last = self._last
        stream.prev = last
        stream.next = None
        stream.in_fifo = True
        if last is None:
            self._first = stream
        else:
            last.next = stream
        self._last = stream
        return 0

    def _unlink(self, stream):
        prev = stream.prev
        nxt = stream.next
        if prev is None:
            self._first = nxt
        else:
            prev.next = nxt
        if nxt is None:
            self._last = prev
        else:
            nxt.prev = prev
        stream.prev = None
        stream.next = None
        stream.in_fifo = False
        return 0
