# C declarations Cython applies to send.py (pure-Python mode): the send functions and the
# compiled build's libzmq path.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING
from cpython.object cimport PyObject_GenericGetAttr
from libc.errno cimport EAGAIN
from libc.string cimport memcpy

from corral._core.envelope cimport _check_fields, _put_header, encode, wbuf
from corral._core.libzmq cimport Libzmq, ZMQ_DONTWAIT, fallback_reason, libzmq_api, zmq_msg_t

cdef bint _COMPILED
cdef Py_ssize_t _HDR
cdef Py_ssize_t _COPY_LIMIT
cdef int _NOBLOCK
cdef object _Again
cdef int _SEND_UNRESOLVED, _SEND_LIBZMQ, _SEND_PYZMQ, _SEND_MODE
cdef object _PLAIN_GETATTR_TYPE


@cython.locals(size=Py_ssize_t, sock="void*", api="Libzmq*")
cpdef send_frame(socket, frame)

@cython.locals(sender_len=Py_ssize_t, size=Py_ssize_t, sock="void*", msg=zmq_msg_t,
               w=wbuf, err=int, api="Libzmq*")
cpdef encode_and_send(socket, long long msg_type, long long seq, bytes sender, bytes body)

@cython.locals(cls=object, closed=object, handle=object)
cdef void* _live_handle(socket) except? NULL

cdef _send_pyzmq(socket, frame)
