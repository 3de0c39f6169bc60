# C declarations Cython applies to timers.py (pure-Python mode).
cimport cython

from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from corral._core.heap cimport DeadlineHeap, HeapItem


cdef timespec _now  # (read by MonotonicClock.__call__; the GIL serialises its callers)


@cython.final
cdef class MonotonicClock:
    cdef readonly double offset


@cython.final
cdef class _Timer(HeapItem):
    cdef object key


@cython.final
cdef class TimerQueue:
    cdef DeadlineHeap _heap
    cdef dict _live
    cdef unsigned long long _next_handle

    @cython.locals(handle="unsigned long long", timer=_Timer)
    cpdef unsigned long long schedule(self, double deadline, key) except? 0

    @cython.locals(timer=_Timer)
    cpdef bint cancel(self, handle) except -1

    @cython.locals(out=list, heap=DeadlineHeap, timer=_Timer)
    cpdef list pop_due(self, double now)

    @cython.locals(top=HeapItem)
    cpdef next_deadline(self)
