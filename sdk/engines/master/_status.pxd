# C declarations Cython applies to _status.py (pure-Python mode): the master's task record
# is a C type, whose fields the loops read and write as struct fields.
cimport cython

cdef int _STAGING
# C copies of the row layout (corral._core.rows)
cdef Py_ssize_t ACK_ID, ACK_TASK_ID, ACK_UUID, FRAMEWORK_ID, HEALTH, LATEST_STATE, STATE, STATUS, TASK_ID, UUID


@cython.final
cdef class MasterTask:
    cdef public int state
    cdef public int status_update_state
    cdef public bytes status_update_uuid
    cdef public bytes acked_uuid
    cdef public object healthy
    cdef public str agent_id
    cdef public str id
    cdef public str name
    cdef public str framework_id
    cdef public object resources
    cdef public str role
    cdef public list statuses


@cython.locals(relayed=dict, reacks=list, unknown=Py_ssize_t, row=tuple, out=list, agent_tasks=dict, fw_tasks=dict,
               task=MasterTask, uuid=bytes, statuses=list)
cpdef tuple master_updates(list rows, agent, dict frameworks, dict healthy_of, set_latest)

@cython.locals(forwarded=dict, finished=list, invalid=Py_ssize_t, row=tuple, out=list, task=MasterTask, uuid=bytes)
cpdef tuple master_acks(list rows, str framework_id, dict tasks, dict agents, frozenset terminal)
