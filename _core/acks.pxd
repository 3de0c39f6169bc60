# C declarations Cython applies to acks.py (pure-Python mode).
cimport cython

from corral._core.heap cimport DeadlineHeap, HeapItem

cdef object _FORWARD, _QUEUED, _DUPLICATE, _ACKED, _STALE, _UNKNOWN
cdef Py_ssize_t _SCAN_LIMIT, _ACKED_REMEMBERED


@cython.final
cdef class _Stream(HeapItem):
    cdef object key
    cdef object head_uuid
    cdef object head_payload
    cdef list rest
    cdef Py_ssize_t rest_pos
    cdef dict seen
    cdef double backoff


@cython.locals(stream=_Stream)
cdef _Stream _new_stream(key)

cdef Py_ssize_t _size(_Stream stream) except -1

@cython.locals(rest=list, i=Py_ssize_t)
cdef bint _knows(_Stream stream, uuid) except -1

@cython.locals(uuids=dict)
cdef dict _pending_uuids(_Stream stream)

@cython.locals(seen=dict, keep=Py_ssize_t)
cdef int _remember(_Stream stream, uuid) except -1

@cython.locals(rest=list)
cdef int _push(_Stream stream, uuid, payload) except -1

@cython.locals(rest=list, pos=Py_ssize_t)
cdef bint _pop(_Stream stream) except -1


@cython.final
cdef class AckTracker:
    cdef double _initial
    cdef double _max
    cdef dict _streams
    cdef DeadlineHeap _heap
    cdef Py_ssize_t _pending
    cdef bint _paused

    @cython.locals(stream=_Stream)
    cpdef add(self, key, uuid, payload, double now)

    @cython.locals(stream=_Stream)
    cpdef ack(self, key, uuid, double now)

    @cython.locals(stream=_Stream)
    cpdef head(self, key)

    @cython.locals(stream=_Stream, out=list, heap=DeadlineHeap)
    cpdef list due(self, double now)

    @cython.locals(top=HeapItem)
    cpdef next_deadline(self)

    @cython.locals(stream=_Stream, out=list, deadline=double)
    cpdef list resume(self, double now)

    @cython.locals(stream=_Stream, rest=list)
    cpdef list pending(self, key)

    @cython.locals(stream=_Stream)
    cpdef remove(self, key)

    cdef int _restart(self, _Stream stream, double now) except -1
