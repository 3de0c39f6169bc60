# C declarations Cython applies to decoding.py (pure-Python mode): the reader is a C
# struct-like class whose methods are C calls, and the loops run on C integers.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdlib cimport calloc
from libc.string cimport memcmp, memcpy

ctypedef const unsigned char* cbuf

cdef bint _COMPILED
cdef int _VARINT, _I64, _LEN, _I32
cdef long _MAX_STATE, _MAX_HEALTH
cdef unsigned long long _LOW32, _INT32_MAX, _TWO32, _HASH_SEED, _HASH_MUL


@cython.final
cdef class _Reader:
    cdef bytes data
    cdef Py_ssize_t pos
    cdef Py_ssize_t end

    @cython.locals(data=bytes, pos=Py_ssize_t, result="unsigned long long",
                   shift=int, b="unsigned long long")
    cdef unsigned long long varint(self) except? 0x7FFFFFFF

    @cython.locals(value="unsigned long long")
    cdef long int32(self) except? -1

    @cython.locals(n="unsigned long long")
    cdef Py_ssize_t length(self) except -1

    @cython.locals(n=Py_ssize_t, start=Py_ssize_t)
    cdef str text(self)

    @cython.locals(n=Py_ssize_t, start=Py_ssize_t, src=cbuf, known="const char*", size=Py_ssize_t)
    cdef str id_text(self, str previous)

    @cython.locals(n=Py_ssize_t, start=Py_ssize_t)
    cdef str task_text(self)

    @cython.locals(n=Py_ssize_t, start=Py_ssize_t)
    cdef bytes blob(self)

    cdef int skip(self, unsigned long long wire_type) except -1

    cdef int _advance(self, Py_ssize_t n) except -1

    @cython.locals(n=Py_ssize_t, stop=Py_ssize_t, outer=Py_ssize_t)
    cdef int ints(self, unsigned long long wire_type, list column) except -1


@cython.locals(reader=_Reader)
cdef _Reader _reader(bytes data, Py_ssize_t pos, Py_ssize_t end)

cdef Py_ssize_t _CACHE_WAYS, _ID_CACHE_SLOTS, _TASK_ID_CACHE_SLOTS, _next_way

cdef struct _IdSlot:  # one way of a set of an id cache: 16 bytes, four to a cache line
    unsigned int hash  # of the id's UTF-8 (never 0); 0: the slot is empty
    unsigned int size  # its length in bytes
    PyObject* text  # the str (a reference the slot owns)

@cython.locals(block="void*")
cdef _IdSlot* _slot_array(Py_ssize_t count) except NULL

cdef _IdSlot* _ID_SLOTS
cdef _IdSlot* _TASK_ID_SLOTS

@cython.locals(src="const char*", size=Py_ssize_t)
cpdef str canonical_task_id(str task_id)

@cython.locals(h="unsigned long long", word="unsigned long long", i=Py_ssize_t)
cdef unsigned int _id_hash(cbuf src, Py_ssize_t n) noexcept

@cython.locals(h="unsigned int", base=Py_ssize_t, free=Py_ssize_t, way=Py_ssize_t, entry="_IdSlot*",
               known="const char*", size=Py_ssize_t, text=str)
cdef str _cached_text(cbuf src, Py_ssize_t n, _IdSlot* slots, Py_ssize_t count, str made)

cdef str _cached_id(cbuf src, Py_ssize_t n)

@cython.locals(key="unsigned long long", field=Py_ssize_t, wire_type="unsigned long long", column=list)
cdef int _read_columns(_Reader reader, list columns) except -1

@cython.locals(reader=_Reader, n=Py_ssize_t, stop=Py_ssize_t, seen="unsigned long long", bit="unsigned long long",
               key="unsigned long long", fid=str, eid=str, tid=str, uuid=bytes, status=bytes, state=long,
               health=long, latest=long, value=long)
cdef tuple _one_row(bytes data)

cdef int _TASK_ID, _CACHED_ID, _EMPTINESS
cdef str _NOT_EMPTY

@cython.locals(key="unsigned long long", value=str, n=Py_ssize_t, m=Py_ssize_t, outer=Py_ssize_t)
cdef str _id_value(_Reader reader, int how)

@cython.locals(reader=_Reader, key="unsigned long long", value=str, agent_id=str)
cpdef str agent_id_of(bytes data)

cpdef tuple status_fields(bytes data)

@cython.locals(fields=tuple)
cpdef long status_state(bytes data) except? -2

@cython.locals(reader=_Reader, key="unsigned long long", value=str, task_id=str,
               agent_id=str, state=long, health=long)
cdef tuple _status_fields(bytes data, int task_id_as)

@cython.locals(row=tuple, columns=list, reader=_Reader, inner=_Reader, key="unsigned long long",
               stop=Py_ssize_t, n=Py_ssize_t, i=Py_ssize_t, latest=list, fids=list, eids=list, tids=list,
               states=list, uuids=list, statuses=list, healths=list)
cpdef list decode_updates(bytes data)

@cython.locals(value=long)
cdef int _check_range(list column, long largest, str name) except -1


@cython.locals(reader=_Reader, key="unsigned long long", field="unsigned long long", first=str, second=str,
               seconds=list, task_ids=list, uuids=list, n=Py_ssize_t, i=Py_ssize_t)
cpdef tuple decode_acks(bytes data, int width)

