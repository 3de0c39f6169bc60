# C declarations Cython applies to dispatch.py (pure-Python mode): the Dispatcher and Route
# types, typed locals, and the libzmq receive loop of the compiled build.
cimport cython
from libc.errno cimport EAGAIN

from corral._core.decoding cimport _cached_id
from corral._core.envelope cimport Envelope, _check_header, _envelope, cbuf
from corral._core.libzmq cimport Libzmq, ZMQ_DONTWAIT, fallback_reason, libzmq_api, zmq_msg_t

cdef bint _COMPILED
cdef Py_ssize_t _HDR
cdef int _BATCH
cdef int _OK
cdef int _BYTES_PER_UNIT_SHIFT


@cython.final
cdef class Route:
    cdef readonly object parse
    cdef readonly object handle
    cdef readonly object clock
    cdef readonly object parse_errors
    cdef readonly object undecodable


@cython.locals(p=cbuf, sender_len=Py_ssize_t, begin=Py_ssize_t, sender=str)
cdef int _follow(Route route, bytes frame, Py_ssize_t start, Py_ssize_t end) except -1


@cython.final
cdef class Dispatcher:
    cdef Py_ssize_t _max_frame_size
    cdef object _on_error
    cdef list _handlers
    cdef unsigned long long _received
    cdef unsigned long long _dispatched
    cdef unsigned long long _malformed
    cdef unsigned long long _unknown_type
    cdef unsigned long long _oversized
    cdef unsigned long long _handler_failed

    cpdef Py_ssize_t dispatch(self, bytes frame) except -1

    @cython.locals(n=Py_ssize_t)
    cpdef Py_ssize_t drain(self, socket, Py_ssize_t limit) except -1

    @cython.locals(n=Py_ssize_t, used=Py_ssize_t)
    cdef Py_ssize_t _drain_pyzmq(self, socket, Py_ssize_t limit) except -1

    @cython.locals(sock="void*", n=Py_ssize_t, used=Py_ssize_t, size=int, msg=zmq_msg_t, data="char*",
                   frame=bytes, closed_attr=str, api="Libzmq*")
    cdef Py_ssize_t _drain_libzmq(self, socket, size_t handle, Py_ssize_t limit) except? -1

    @cython.locals(end=Py_ssize_t)
    cdef Py_ssize_t _receive(self, bytes frame) except -1

    @cython.locals(p=cbuf, err=int, msg_type=int, handlers=list, handler=object)
    cdef Py_ssize_t _dispatch_at(self, bytes frame, Py_ssize_t start, Py_ssize_t end,
                                 bint outer) except -1

    @cython.locals(p=cbuf, handled=Py_ssize_t, size="unsigned int")
    cdef Py_ssize_t _dispatch_batch(self, bytes frame, Py_ssize_t pos,
                                    Py_ssize_t end) except -1

    cdef int _oversize(self, Py_ssize_t size) except -1

    cdef int _report(self, kind, str detail, exc) except -1
