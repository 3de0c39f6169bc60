# C declarations Cython applies to envelope.py (pure-Python mode): types of the hot
# objects and locals, the C helpers the compiled-only branches call, and the libzmq
# entry points (declared here, resolved at run time with dlsym: no libzmq headers or
# link step at build time).
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject_GenericGetAttr
from libc.errno cimport EAGAIN
from libc.string cimport memcpy

ctypedef const unsigned char* cbuf
ctypedef unsigned char* wbuf

cdef extern from "<dlfcn.h>" nogil:
    void* dlopen(const char* filename, int flags)
    void* dlsym(void* handle, const char* symbol)
    int dlclose(void* handle)
    int RTLD_NOW
    int RTLD_NOLOAD

# zmq_msg_t is 64 opaque bytes, pointer-aligned.
ctypedef struct zmq_msg_t:
    void* _opaque[8]

ctypedef int (*_zmq_msg_init_fn)(zmq_msg_t* msg) noexcept nogil
ctypedef int (*_zmq_msg_recv_fn)(zmq_msg_t* msg, void* socket, int flags) noexcept nogil
ctypedef void* (*_zmq_msg_data_fn)(zmq_msg_t* msg) noexcept nogil
ctypedef int (*_zmq_msg_close_fn)(zmq_msg_t* msg) noexcept nogil
ctypedef int (*_zmq_errno_fn)() noexcept nogil
ctypedef int (*_zmq_send_fn)(void* socket, const void* buf, size_t len,
                            int flags) noexcept nogil
ctypedef int (*_zmq_msg_init_size_fn)(zmq_msg_t* msg, size_t size) noexcept nogil
ctypedef int (*_zmq_msg_send_fn)(zmq_msg_t* msg, void* socket, int flags) noexcept nogil
ctypedef void (*_zmq_version_fn)(int* major, int* minor, int* patch) noexcept nogil

cdef enum:
    _ZMQ_DONTWAIT = 1

cdef _zmq_msg_init_fn _zmq_msg_init
cdef _zmq_msg_recv_fn _zmq_msg_recv
cdef _zmq_msg_data_fn _zmq_msg_data
cdef _zmq_msg_close_fn _zmq_msg_close
cdef _zmq_errno_fn _zmq_errno
cdef _zmq_send_fn _zmq_send
cdef _zmq_msg_init_size_fn _zmq_msg_init_size
cdef _zmq_msg_send_fn _zmq_msg_send

cdef bint _COMPILED
cdef int _MAGIC
cdef int _VERSION
cdef Py_ssize_t _HDR
cdef int _BATCH
cdef int _BYTES_PER_UNIT_SHIFT
cdef int _OK, _SHORT, _BAD_MAGIC, _BAD_VERSION, _SENDER_PAST_END
cdef tuple _HEADER_ERRORS
cdef Py_ssize_t _COPY_LIMIT
cdef int _NOBLOCK
cdef object _Again
cdef int _SEND_UNRESOLVED, _SEND_LIBZMQ, _SEND_PYZMQ, _SEND_MODE
cdef object _PLAIN_GETATTR_TYPE


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

cdef int _check_fields(long long msg_type, long long seq, bytes sender, bytes body) except -1

cdef void _put_header(wbuf w, unsigned int msg_type, unsigned int seq,
                      unsigned int sender_len) noexcept

@cython.locals(sender_len=Py_ssize_t, w=wbuf, out=bytes)
cpdef bytes encode(long long msg_type, long long seq, bytes sender, bytes body)

@cython.locals(size=Py_ssize_t, pos=Py_ssize_t, n=Py_ssize_t, w=wbuf, out=bytes, frame=bytes)
cpdef bytes encode_batch(frames)


from corral._core.columns cimport _cached_id


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
                   frame=bytes, closed_attr=str)
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


@cython.locals(size=Py_ssize_t, sock="void*")
cpdef send_frame(socket, frame)

@cython.locals(sender_len=Py_ssize_t, size=Py_ssize_t, sock="void*", msg=zmq_msg_t,
               w=wbuf, err=int)
cpdef encode_and_send(socket, long long msg_type, long long seq, bytes sender, bytes body)

@cython.locals(cls=object, closed=object, handle=object)
cdef void* _live_handle(socket) except? NULL

cdef _send_pyzmq(socket, frame)


@cython.locals(lib="void*", version=_zmq_version_fn, init="void*", recv="void*",
               data="void*", close="void*", errno_="void*", send="void*",
               init_size="void*", msg_send="void*", major=int, minor=int,
               patch=int, encoded=bytes)
cdef str _load_libzmq()
