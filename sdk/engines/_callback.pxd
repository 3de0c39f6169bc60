# C declarations Cython applies to _callback.py (pure-Python mode): Callback is a C type.
cimport cython


@cython.final
cdef class Callback:
    cdef public object event
    cdef public tuple args
    cdef public object ack
