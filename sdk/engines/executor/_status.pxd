# C declarations Cython applies to _status.py (pure-Python mode): UpdateSource is a C type
# that writes each stamped status straight into the bytes it sends.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from corral._core.acks cimport AckTracker
from corral._core.decoding cimport status_fields

cdef bint _COMPILED, _LITTLE_ENDIAN
cdef object _FORWARD, _ACKED, _DOUBLE, _UUID
# C copies of the row layout (corral._core.rows)
cdef Py_ssize_t EXECUTOR_ACK_TASK_ID, EXECUTOR_ACK_UUID


@cython.final
cdef class UpdateSource:
    cdef public str framework_id
    cdef public str executor_id
    cdef public bytes stamp
    cdef bytes _prefix
    cdef bytes _uuid_key
    cdef unsigned long long _count
    cdef AckTracker _tracker

    @cython.locals(tid=str, state=int, health=int, count="unsigned long long", uuid=bytes, data=bytes,
                   out="char *", i=int, n=Py_ssize_t, m=Py_ssize_t, k=Py_ssize_t, row=tuple)
    cpdef add(self, bytes serialised, double now)


@cython.locals(heads=list, emptied=bint, row=tuple)
cpdef tuple executor_acks(list rows, AckTracker tracker, double now)
