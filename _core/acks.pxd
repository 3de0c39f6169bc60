# C declarations Cython applies to acks.py (pure-Python mode).
cimport cython

cdef object _FORWARD, _QUEUED, _DUPLICATE, _ACKED, _STALE, _UNKNOWN
cdef Py_ssize_t _SCAN_LIMIT


@cython.final
cdef class _Stream:
    cdef object key
    cdef object head_uuid
    cdef object head_payload
    cdef list rest
    cdef Py_ssize_t rest_pos
    cdef set seen
    cdef double deadline
    cdef double backoff
    cdef Py_ssize_t heap_index

    cdef Py_ssize_t size(self) except -1

    @cython.locals(rest=list, i=Py_ssize_t)
    cdef bint knows(self, uuid) except -1

    cdef set pending_uuids(self)

    @cython.locals(rest=list)
    cdef int push(self, uuid, payload) except -1

    @cython.locals(rest=list, pos=Py_ssize_t)
    cdef bint pop(self) except -1


@cython.final
cdef class AckTracker:
    cdef double _initial
    cdef double _max
    cdef dict _streams
    cdef list _heap
    cdef Py_ssize_t _pending
    cdef bint _paused

    @cython.locals(stream=_Stream)
    cpdef add(self, key, uuid, payload, double now)

    @cython.locals(stream=_Stream)
    cpdef ack(self, key, uuid, double now)

    @cython.locals(stream=_Stream)
    cpdef head(self, key)

    @cython.locals(stream=_Stream, out=list, heap=list)
    cpdef list due(self, double now)

    @cython.locals(top=_Stream)
    cpdef next_deadline(self)

    @cython.locals(stream=_Stream, out=list, deadline=double)
    cpdef list resume(self, double now)

    @cython.locals(stream=_Stream, rest=list)
    cpdef list pending(self, key)

    @cython.locals(stream=_Stream)
    cpdef remove(self, key)

    cdef int _restart(self, _Stream stream, double now) except -1

    @cython.locals(i=Py_ssize_t, heap=list, last=_Stream)
    cdef int _unschedule(self, _Stream stream) except -1

    @cython.locals(heap=list, item=_Stream, parent=_Stream, parent_index=Py_ssize_t)
    cdef Py_ssize_t _sift_up(self, Py_ssize_t i) except -1

    @cython.locals(heap=list, n=Py_ssize_t, item=_Stream, child=_Stream, right=_Stream,
                   child_index=Py_ssize_t)
    cdef int _sift_down(self, Py_ssize_t i) except -1
