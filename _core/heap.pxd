# C declarations Cython applies to heap.py (pure-Python mode). acks.pxd and timers.pxd
# cimport these: their items subclass HeapItem, and their owners call the heap's
# methods as C calls.
cimport cython

cdef bint _COMPILED


cdef class HeapItem:
    cdef double deadline
    cdef unsigned long long seq
    cdef Py_ssize_t heap_index


@cython.final
cdef class DeadlineHeap:
    cdef list _items

    cdef HeapItem top(self)

    @cython.locals(i=Py_ssize_t)
    cdef int schedule(self, HeapItem item, double deadline) except -1

    @cython.locals(i=Py_ssize_t, items=list, last=HeapItem)
    cdef bint remove(self, HeapItem item) except -1

    @cython.locals(items=list, item=HeapItem, last=HeapItem)
    cdef HeapItem pop(self)

    @cython.locals(item=HeapItem)
    cdef int clear(self) except -1

    @cython.locals(items=list, parent=HeapItem, parent_index=Py_ssize_t, deadline=double,
                   seq="unsigned long long")
    cdef Py_ssize_t _sift_up(self, HeapItem item, Py_ssize_t i) except -1

    @cython.locals(items=list, n=Py_ssize_t, child=HeapItem, right=HeapItem,
                   child_index=Py_ssize_t, deadline=double, seq="unsigned long long")
    cdef int _sift_down(self, HeapItem item, Py_ssize_t i) except -1
