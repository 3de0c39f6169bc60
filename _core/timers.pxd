# C declarations Cython applies to timers.py (pure-Python mode).
cimport cython

cdef Py_ssize_t _COMPACT_MIN


@cython.final
cdef class _Timer:
    cdef double deadline
    cdef unsigned long long handle
    cdef object key
    cdef bint live


cdef bint _before(_Timer a, _Timer b) noexcept


@cython.final
cdef class TimerQueue:
    cdef list _heap
    cdef dict _live
    cdef unsigned long long _next_handle

    @cython.locals(handle="unsigned long long", timer=_Timer)
    cpdef unsigned long long schedule(self, double deadline, key) except? 0

    @cython.locals(timer=_Timer, dead=Py_ssize_t)
    cpdef bint cancel(self, handle) except -1

    @cython.locals(out=list, heap=list, timer=_Timer)
    cpdef list pop_due(self, double now)

    @cython.locals(heap=list, timer=_Timer)
    cpdef next_deadline(self)

    @cython.locals(heap=list, last=_Timer)
    cdef int _pop_top(self) except -1

    @cython.locals(i=Py_ssize_t, timer=_Timer)
    cdef int _compact(self) except -1

    @cython.locals(heap=list, item=_Timer, parent=_Timer, parent_index=Py_ssize_t)
    cdef int _sift_up(self, Py_ssize_t i) except -1

    @cython.locals(heap=list, n=Py_ssize_t, item=_Timer, child=_Timer, right=_Timer,
                   child_index=Py_ssize_t)
    cdef int _sift_down(self, Py_ssize_t i) except -1
