# C declarations Cython applies to _status.py (pure-Python mode): the reconciler's task
# record is a C type, and the loops make Callbacks as C structs.
cimport cython

from corral._core.acks cimport RecentUuids
from corral._core.decoding cimport agent_id_of
from corral.engines._callback cimport Callback

# C copies of the row layout (corral._core.rows), and of what the reconciler learns of an update
cdef Py_ssize_t ACK_TASK_ID, ACK_UUID, STATE, STATUS, TASK_ID, UUID
cdef Py_ssize_t SEEN_TASK_ID, SEEN_AGENT_ID, SEEN_STATE, SEEN_TERMINAL


@cython.final
cdef class TrackedTask:
    cdef public str agent_id
    cdef public int state
    cdef public double last_update


@cython.locals(callbacks=list, seen=list, terminal=list, duplicates=list, malformed=Py_ssize_t, row=tuple,
               delivered=RecentUuids, slot=Py_ssize_t, ended=bint, callback=Callback)
cpdef tuple scheduler_updates(list rows, dict delivered_by_task, Py_ssize_t remembered, parse, decode_error,
                              frozenset terminal_states, event)

@cython.locals(row=tuple, delivered=RecentUuids, slot=Py_ssize_t)
cpdef int mark_acknowledged(list acks, dict delivered_by_task) except -1

@cython.locals(emptied=bint, row=tuple, record=TrackedTask)
cpdef bint track_updates(list updates, dict tasks, dict stuck_checked, dict pending, double now) except -1
