# C declarations Cython applies to encoding.py (pure-Python mode): the writers are C
# functions over C integers and a pointer into the bytes object being written.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.string cimport memcpy

ctypedef unsigned char* wbuf

cdef bint _COMPILED
cdef int _VARINT, _LEN
cdef int _FRAMEWORK_IDS, _EXECUTOR_IDS, _TASK_IDS, _STATES, _UUIDS, _STATUSES, _LATEST_STATES, _HEALTHS
cdef long _MAX_STATE, _MAX_HEALTH, _HEALTHY
# C copies of the row layout (corral._core.rows)
cdef Py_ssize_t FRAMEWORK_ID, EXECUTOR_ID, TASK_ID, STATE, UUID, STATUS, HEALTH, LATEST_STATE, UPDATE_ROW_WIDTH
cdef Py_ssize_t ACK_ID, ACK_TASK_ID, ACK_UUID, ACK_ROW_WIDTH
cdef Py_ssize_t EXECUTOR_ACK_TASK_ID, EXECUTOR_ACK_UUID, EXECUTOR_ACK_ROW_WIDTH
cdef Py_ssize_t RECONCILE_TASK_ID, RECONCILE_AGENT_ID

cdef int _put_varint(bytearray out, unsigned long long value) except -1

cdef int _put_blob(bytearray out, int key, value) except -1

@cython.locals(row=tuple)
cdef int _put_texts(bytearray out, int key, list rows, Py_ssize_t index) except -1

@cython.locals(row=tuple)
cdef int _put_blobs(bytearray out, int key, list rows, Py_ssize_t index) except -1

@cython.locals(packed=bytearray, row=tuple)
cdef int _put_ints(bytearray out, int key, list rows, Py_ssize_t index) except -1

@cython.locals(size=Py_ssize_t)
cdef Py_ssize_t _varint_size(unsigned long long value) noexcept

cdef Py_ssize_t _blob_size(Py_ssize_t n) noexcept

cdef bytes _text_bytes(value)

@cython.locals(state=long, health=long, latest=long)
cdef int _check_update_row(row) except -1

cdef int _check_ack_row(row, Py_ssize_t width) except -1

cdef const char* _utf8(value, Py_ssize_t* size) except NULL

@cython.locals(size=Py_ssize_t)
cdef Py_ssize_t _text_size(value) except -1

cdef Py_ssize_t _w_varint(wbuf w, Py_ssize_t pos, unsigned long long value) noexcept

cdef Py_ssize_t _w_blob(wbuf w, Py_ssize_t pos, int key, const char* src, Py_ssize_t n) noexcept

@cython.locals(src="const char*", n=Py_ssize_t)
cdef Py_ssize_t _w_text(wbuf w, Py_ssize_t pos, int key, value) except -1

cdef Py_ssize_t _w_bytes(wbuf w, Py_ssize_t pos, int key, bytes value) noexcept

@cython.locals(row=tuple)
cdef inline Py_ssize_t _w_texts(wbuf w, Py_ssize_t pos, int key, list rows, Py_ssize_t index) except -1

@cython.locals(row=tuple)
cdef inline Py_ssize_t _w_blobs(wbuf w, Py_ssize_t pos, int key, list rows, Py_ssize_t index) except -1

@cython.locals(row=tuple)
cdef Py_ssize_t _w_ints(wbuf w, Py_ssize_t pos, int key, Py_ssize_t size, list rows, Py_ssize_t index) except -1

cdef bytes _finish(bytes out, wbuf w, Py_ssize_t pos)

@cython.locals(inner=Py_ssize_t, states=Py_ssize_t, latests=Py_ssize_t, healths=Py_ssize_t,
               uuid=bytes, status=bytes, out=bytes, w=wbuf, pos=Py_ssize_t)
cdef bytes _encode_updates_compiled(list rows)

@cython.locals(width=Py_ssize_t, task_at=Py_ssize_t, uuid_at=Py_ssize_t, size=Py_ssize_t, uuid=bytes, out=bytes,
               w=wbuf, pos=Py_ssize_t)
cdef bytes _encode_acks_compiled(str first, str second, list rows)

@cython.locals(inner=bytearray, out=bytearray)
cpdef bytes encode_updates(list rows)

@cython.locals(out=bytearray, width=Py_ssize_t, task_at=Py_ssize_t, uuid_at=Py_ssize_t)
cpdef bytes encode_acks(str first, str second, list rows)

@cython.locals(inner=bytearray)
cdef int _id_field(bytearray out, int key, value) except -1

cdef Py_ssize_t _id_field_size(value) except -1

@cython.locals(src="const char*", n=Py_ssize_t)
cdef Py_ssize_t _w_id(wbuf w, Py_ssize_t pos, int key, value) except -1

@cython.locals(size=Py_ssize_t)
cdef Py_ssize_t _reconcile_entry_size(tuple row) except -1

@cython.locals(size=Py_ssize_t, row=tuple, out=bytes, w=wbuf, pos=Py_ssize_t)
cdef bytes _encode_reconcile_compiled(str framework_id, list tasks)

@cython.locals(out=bytearray, entry=bytearray)
cpdef bytes encode_reconcile(str framework_id, list tasks)

@cython.locals(size=Py_ssize_t, out=bytes, w=wbuf, pos=Py_ssize_t, buf=bytearray)
cpdef bytes answer_status(str task_id, long state, str agent_id, long health, bytes shared)
