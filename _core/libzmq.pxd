# C declarations Cython applies to libzmq.py (pure-Python mode): the libzmq functions the
# drain and send paths call (declared here, resolved at run time with dlsym: no libzmq
# headers or link step at build time), in one table, `Libzmq`.
cimport cython

cdef extern from "<dlfcn.h>" nogil:
    void* dlopen(const char* filename, int flags)
    void* dlsym(void* handle, const char* symbol)
    int dlclose(void* handle)
    int RTLD_NOW
    int RTLD_NOLOAD

# zmq_msg_t is 64 opaque bytes, pointer-aligned.
ctypedef struct zmq_msg_t:
    void* _opaque[8]

ctypedef int (*zmq_msg_init_fn)(zmq_msg_t* msg) noexcept nogil
ctypedef int (*zmq_msg_recv_fn)(zmq_msg_t* msg, void* socket, int flags) noexcept nogil
ctypedef void* (*zmq_msg_data_fn)(zmq_msg_t* msg) noexcept nogil
ctypedef int (*zmq_msg_close_fn)(zmq_msg_t* msg) noexcept nogil
ctypedef int (*zmq_errno_fn)() noexcept nogil
ctypedef int (*zmq_send_fn)(void* socket, const void* buf, size_t len, int flags) noexcept nogil
ctypedef int (*zmq_msg_init_size_fn)(zmq_msg_t* msg, size_t size) noexcept nogil
ctypedef int (*zmq_msg_send_fn)(zmq_msg_t* msg, void* socket, int flags) noexcept nogil
ctypedef const char* (*zmq_msg_gets_fn)(const zmq_msg_t* msg, const char* property) noexcept nogil
ctypedef void (*zmq_version_fn)(int* major, int* minor, int* patch) noexcept nogil

ctypedef struct Libzmq:
    zmq_msg_init_fn msg_init
    zmq_msg_recv_fn msg_recv
    zmq_msg_data_fn msg_data
    zmq_msg_close_fn msg_close
    zmq_errno_fn last_errno
    zmq_send_fn send
    zmq_msg_init_size_fn msg_init_size
    zmq_msg_send_fn msg_send
    zmq_msg_gets_fn msg_gets

cdef enum:
    ZMQ_DONTWAIT = 1

cdef bint _COMPILED
cdef Libzmq _API

cdef Libzmq* libzmq_api() noexcept

cpdef str fallback_reason(bint prefer_libzmq, str disabled_by)

@cython.locals(lib="void*", version=zmq_version_fn, init="void*", recv="void*",
               data="void*", close="void*", errno_="void*", send="void*",
               init_size="void*", msg_send="void*", gets="void*", major=int, minor=int,
               patch=int, encoded=bytes)
cpdef str load_libzmq()
