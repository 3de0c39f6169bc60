# C declarations Cython applies to relay.py (pure-Python mode).
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from corral._core.acks cimport AckTracker, RecentUuids
from corral._core.columns cimport agent_id_of, status_fields

cdef bint _COMPILED, _LITTLE_ENDIAN
cdef object _FORWARD, _DUPLICATE, _ACKED, _DOUBLE, _UUID


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


cdef int _STAGING


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


@cython.final
cdef class AgentTask:
    cdef public object info
    cdef public str framework_id
    cdef public str executor_id
    cdef public int state
    cdef public str container_id
    cdef public bint checkpoint


@cython.final
cdef class TrackedTask:
    cdef public str agent_id
    cdef public int state
    cdef public double last_update


@cython.final
cdef class Callback:
    cdef public object event
    cdef public tuple args
    cdef public object ack


@cython.locals(heads=list, journal=list, acks=dict, unknown=Py_ssize_t, duplicates=Py_ssize_t, row=tuple,
               out=list, queued=tuple, key=tuple, fw_tasks=dict, task=AgentTask)
cpdef tuple agent_intake(list rows, str sender, dict executors, dict tasks, AckTracker tracker, bytes suffix,
                         double now)


@cython.locals(heads=list, journal=list, ended=list, stale=Py_ssize_t, row=tuple, key=tuple, nxt=tuple,
               fw_tasks=dict, task=AgentTask)
cpdef tuple agent_acks(list rows, AckTracker tracker, dict tasks, frozenset terminal, double now)

@cython.locals(heads=list, emptied=bint, row=tuple)
cpdef tuple executor_acks(list rows, AckTracker tracker, double now)

@cython.locals(relayed=dict, reacks=list, unknown=Py_ssize_t, row=tuple, out=list, agent_tasks=dict, fw_tasks=dict,
               task=MasterTask, uuid=bytes, statuses=list)
cpdef tuple master_updates(list rows, agent, dict frameworks, dict healthy_of, set_latest)

@cython.locals(forwarded=dict, finished=list, invalid=Py_ssize_t, row=tuple, out=list, task=MasterTask, uuid=bytes)
cpdef tuple master_acks(list rows, str framework_id, dict tasks, dict agents, frozenset terminal)

@cython.locals(terminal=list, duplicates=list, seen=list, fresh=Py_ssize_t, malformed=Py_ssize_t, row=tuple, delivered=RecentUuids,
               slot=Py_ssize_t, ended=bint, callback=Callback)
cpdef tuple scheduler_updates(list rows, dict delivered_by_task, Py_ssize_t remembered, parse, decode_error,
                              frozenset terminal_states, reconciler, event, list actions, double now)

@cython.locals(emptied=bint, row=tuple, record=TrackedTask)
cpdef bint track_updates(list updates, dict tasks, dict stuck_checked, dict pending, double now) except -1

@cython.locals(row=tuple, delivered=RecentUuids, slot=Py_ssize_t)
cpdef int mark_acknowledged(list acks, dict delivered_by_task) except -1
