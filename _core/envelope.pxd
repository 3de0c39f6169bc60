# C declarations Cython applies to envelope.py (pure-Python mode): the Envelope type, the
# header check and writer the dispatcher and the send path call, and typed locals.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

ctypedef const unsigned char* cbuf
ctypedef unsigned char* wbuf

cdef bint _COMPILED
cdef int _MAGIC
cdef int _VERSION
cdef Py_ssize_t _HDR
cdef int _BATCH
cdef int _OK, _SHORT, _BAD_MAGIC, _BAD_VERSION, _SENDER_PAST_END


@cython.locals(p=cbuf)
cpdef int _check_header(bytes frame, Py_ssize_t start, Py_ssize_t end) noexcept


@cython.final
cdef class Envelope:
    cdef bytes _frame
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef int _type
    cdef Py_ssize_t _sender_len


@cython.locals(p=cbuf, env=Envelope)
cpdef Envelope _envelope(bytes frame, Py_ssize_t start, Py_ssize_t end)

@cython.locals(err=int)
cpdef Envelope decode(bytes frame)

cpdef int _check_fields(long long msg_type, long long seq, bytes sender, bytes body) except -1

cdef void _put_header(wbuf w, unsigned int msg_type, unsigned int seq,
                      unsigned int sender_len) noexcept

@cython.locals(sender_len=Py_ssize_t, w=wbuf, out=bytes)
cpdef bytes encode(long long msg_type, long long seq, bytes sender, bytes body)

@cython.locals(size=Py_ssize_t, pos=Py_ssize_t, n=Py_ssize_t, w=wbuf, out=bytes, frame=bytes)
cpdef bytes encode_batch(frames)
