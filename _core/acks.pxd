# C declarations Cython applies to acks.py (pure-Python mode).
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memchr, memcmp, memcpy, memset

from corral._core.heap cimport DeadlineHeap, HeapItem

cdef bint _COMPILED
cdef object _FORWARD, _QUEUED, _DUPLICATE, _ACKED, _STALE, _UNKNOWN
cdef Py_ssize_t _SCAN_LIMIT, UUID_SIZE, SMALL_SLOTS, _SLOT_BYTES


cdef inline unsigned char _tag(Py_hash_t h) noexcept


@cython.final
cdef class RecentUuids:
    cdef readonly Py_ssize_t capacity
    cdef Py_ssize_t _next
    cdef Py_ssize_t _size  # slots in use (allocated)
    cdef unsigned char* _tags
    cdef char* _flags
    cdef unsigned char* _inline
    cdef unsigned char* _heap  # the slots once they outgrow _small (NULL before)
    cdef unsigned char _small[72]  # SMALL_SLOTS * _SLOT_BYTES
    cdef list _uuids

    @staticmethod
    @cython.locals(recent=RecentUuids)
    cdef RecentUuids of(Py_ssize_t capacity)

    cdef int _fill(self, Py_ssize_t capacity) except -1

    cdef int _place(self, unsigned char* block, Py_ssize_t size) except -1

    @cython.locals(size=Py_ssize_t, block="unsigned char*")
    cdef int _grow(self) except -1

    cdef object _held(self, Py_ssize_t i)

    @cython.locals(tag="unsigned char", inline=bint, i=Py_ssize_t, uuids=list, held=object, at="unsigned char*")
    cpdef Py_ssize_t find(self, uuid) except -2

    @cython.locals(i=Py_ssize_t)
    cpdef Py_ssize_t add(self, uuid, bint flag) except -1

    cdef Py_ssize_t _slot(self, Py_ssize_t i) except -1

    cpdef bint flagged(self, Py_ssize_t i) except -1

    cpdef set_flag(self, Py_ssize_t i)

    cpdef forget(self, Py_ssize_t i)


@cython.final
cdef class _Stream(HeapItem):
    cdef object key
    cdef object head_uuid
    cdef object head_payload
    cdef list rest
    cdef Py_ssize_t rest_pos
    cdef set pending
    cdef RecentUuids acked
    cdef double backoff
    cdef bint in_fifo
    cdef _Stream prev
    cdef _Stream next


@cython.locals(stream=_Stream)
cdef _Stream _new_stream(key)

cdef Py_ssize_t _size(_Stream stream) except -1

@cython.locals(rest=list, i=Py_ssize_t)
cdef bint _knows(_Stream stream, uuid) except -1

@cython.locals(rest=list, pending=set)
cdef int _push(_Stream stream, uuid, payload) except -1

@cython.locals(rest=list, pos=Py_ssize_t, acked=RecentUuids)
cdef bint _pop(_Stream stream, Py_ssize_t remember) except -1


@cython.final
cdef class AckTracker:
    cdef Py_ssize_t _remember
    cdef double _initial
    cdef double _max
    cdef double _factor
    cdef dict _streams
    cdef _Stream _first
    cdef _Stream _last
    cdef DeadlineHeap _heap
    cdef Py_ssize_t _pending
    cdef bint _paused

    @cython.locals(stream=_Stream)
    cpdef add(self, key, uuid, payload, double now)

    cpdef ack(self, key, uuid, double now)

    @cython.locals(stream=_Stream)
    cpdef tuple ack_next(self, key, uuid, double now)

    @cython.locals(stream=_Stream)
    cpdef head(self, key)

    @cython.locals(stream=_Stream, first=_Stream, top=HeapItem, out=list, heap=DeadlineHeap)
    cpdef list due(self, double now)

    @cython.locals(first=_Stream, top=HeapItem)
    cpdef next_deadline(self)

    @cython.locals(stream=_Stream, out=list, deadline=double)
    cpdef list resume(self, double now)

    @cython.locals(stream=_Stream, rest=list)
    cpdef list pending(self, key)

    @cython.locals(stream=_Stream)
    cpdef remove(self, key)

    @cython.locals(deadline=double, last=_Stream)
    cdef int _restart(self, _Stream stream, double now) except -1

    cdef int _unschedule(self, _Stream stream) except -1

    @cython.locals(last=_Stream)
    cdef int _append(self, _Stream stream) except -1

    @cython.locals(prev=_Stream, nxt=_Stream)
    cdef int _unlink(self, _Stream stream) except -1
