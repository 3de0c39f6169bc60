# C declarations Cython applies to _status.py (pure-Python mode): the agent's task record
# is a C type, whose fields the loops read and write as struct fields.
cimport cython

from corral._core.acks cimport AckTracker

cdef object _FORWARD, _DUPLICATE, _ACKED
cdef int _STAGING
# C copies of the row layout (corral._core.rows)
cdef Py_ssize_t ACK_ID, ACK_TASK_ID, ACK_UUID, EXECUTOR_ID, FRAMEWORK_ID, HEALTH, LATEST_STATE, STATE, STATUS, TASK_ID, UUID


@cython.final
cdef class AgentTask:
    cdef public object info
    cdef public str framework_id
    cdef public str executor_id
    cdef public int state
    cdef public str container_id
    cdef public bint checkpoint


@cython.locals(heads=list, journal=list, acks=dict, unknown=Py_ssize_t, duplicates=Py_ssize_t, row=tuple,
               out=list, queued=tuple, key=tuple, fw_tasks=dict, task=AgentTask)
cpdef tuple agent_intake(list rows, str sender, dict executors, dict tasks, AckTracker tracker, bytes suffix,
                         double now)


@cython.locals(heads=list, journal=list, ended=list, stale=Py_ssize_t, row=tuple, key=tuple, nxt=tuple,
               fw_tasks=dict, task=AgentTask)
cpdef tuple agent_acks(list rows, AckTracker tracker, dict tasks, frozenset terminal, double now)
