# C declarations Cython applies to messages.py (pure-Python mode): the six message
# classes are C types with typed fields.
cimport cython

from corral._core.decoding cimport decode_updates, decode_acks
from corral._core.encoding cimport encode_updates, encode_acks


cdef class UpdateMessage:
    cdef public list rows
    cdef public object _wire

    cpdef bytes SerializeToString(self)


@cython.final
cdef class ExecutorStatusUpdate(UpdateMessage):
    pass


@cython.final
cdef class StatusUpdateMessage(UpdateMessage):
    pass


@cython.final
cdef class Updates(UpdateMessage):
    pass


cdef class AckMessage:
    cdef public list rows

    cpdef tuple _shared(self)

    @cython.locals(shared=tuple)
    cpdef bytes SerializeToString(self)


@cython.final
cdef class Acknowledge(AckMessage):
    cdef public str framework_id


@cython.final
cdef class StatusUpdateAck(AckMessage):
    cdef public str agent_id


@cython.final
cdef class ExecutorStatusUpdateAck(AckMessage):
    cdef public str agent_id
    cdef public str framework_id
