# C declarations Cython applies to envelope.py (pure-Python mode): the Envelope,
# Dispatcher and Route types, typed locals, the header writer the send path calls, and
# the libzmq receive loop of the compiled build.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.errno cimport EAGAIN
from libc.string cimport memcmp, memcpy, strlen

from corral._core.decoding cimport _cached_id
from corral._core.libzmq cimport Libzmq, ZMQ_DONTWAIT, fallback_reason, libzmq_api, zmq_msg_t

ctypedef const unsigned char* cbuf
ctypedef unsigned char* wbuf

cdef bint _COMPILED
cdef int _MAGIC
cdef int _VERSION
cdef Py_ssize_t _HDR
cdef int _BATCH
cdef int _BYTES_PER_UNIT_SHIFT
cdef int _OK, _SHORT, _BAD_MAGIC, _BAD_VERSION, _SENDER_PAST_END
cdef tuple _HEADER_ERRORS


cdef int _check_header(cbuf p, Py_ssize_t start, Py_ssize_t end) noexcept


@cython.final
cdef class Envelope:
    cdef bytes _frame
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef int _type
    cdef Py_ssize_t _sender_len


@cython.locals(p=cbuf, env=Envelope)
cdef Envelope _envelope(bytes frame, Py_ssize_t start, Py_ssize_t end)

@cython.locals(err=int)
cpdef Envelope decode(bytes frame)

cpdef int _check_fields(long long msg_type, long long seq, bytes sender, bytes body) except -1

cdef void _put_header(wbuf w, unsigned int msg_type, unsigned int seq,
                      unsigned int sender_len) noexcept

@cython.locals(sender_len=Py_ssize_t, w=wbuf, out=bytes)
cpdef bytes encode(long long msg_type, long long seq, bytes sender, bytes body)

@cython.locals(size=Py_ssize_t, pos=Py_ssize_t, n=Py_ssize_t, w=wbuf, out=bytes, frame=bytes)
cpdef bytes encode_batch(frames)


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
    cdef unsigned long long _refused
    #: authenticated drains (`authenticate`): who learns each frame's principal, the
    #: principals refused, the last connection's User-Id and verdict, and the User-Ids
    #: and principals of the last connections taken
    cdef object _sink
    cdef frozenset _revoked
    cdef bytes _peer
    cdef bint _peer_ok
    cdef list _taken_ids
    cdef list _taken_principals

    cpdef Py_ssize_t dispatch(self, bytes frame) except -1

    @cython.locals(n=Py_ssize_t)
    cpdef Py_ssize_t drain(self, socket, Py_ssize_t limit) except -1

    @cython.locals(n=Py_ssize_t, used=Py_ssize_t, user_id=bytes, frame=bytes, taken=bint)
    cdef Py_ssize_t _drain_pyzmq(self, socket, Py_ssize_t limit) except -1

    @cython.locals(sock="void*", n=Py_ssize_t, used=Py_ssize_t, size=int, msg=zmq_msg_t, data="char*",
                   frame=bytes, closed_attr=str, api="Libzmq*", user_id="const char*", id_len=size_t,
                   peer=bytes, taken=bint, i=Py_ssize_t, ids=list)
    cdef Py_ssize_t _drain_libzmq(self, socket, size_t handle, Py_ssize_t limit) except? -1

    @cython.locals(principal=str)
    cdef bint _new_peer(self, bytes user_id) except -1

    @cython.locals(principal=str)
    cdef bint _taken_peer(self, Py_ssize_t index) except -1

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
