"""The status path's encoders: rows -> protobuf wire bytes, with no protobuf objects in
between: the updates of StatusColumns (inside ExecutorStatusUpdate, StatusUpdateMessage
and Updates) and the three acks of corral.proto, and the two bulk messages of
reconciliation (a Reconcile call's tasks, the master's answer statuses); `decoding` is
the other direction.

The bytes are exactly protobuf's (tests check them against the generated classes):
fields in number order, packed varint columns, strings as UTF-8. Rows that do not fit
the schema raise ColumnsError.

One source for both builds: plain Python as is; compiled by Cython with encoding.pxd.
The encoders have compiled-only branches (``_COMPILED``) that size the message first
and write it straight into the bytes object they return, reading each string's UTF-8
where CPython keeps it.
"""
from __future__ import annotations

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

from corral._core.rows import (ACK_ID, ACK_ROW_WIDTH, ACK_TASK_ID, ACK_UUID, EXECUTOR_ACK_ROW_WIDTH,
                               EXECUTOR_ACK_TASK_ID, EXECUTOR_ACK_UUID, EXECUTOR_ID, FRAMEWORK_ID, HEALTH, LATEST_STATE,
                               RECONCILE_AGENT_ID, RECONCILE_TASK_ID, STATE, STATUS, TASK_ID, UPDATE_ROW_WIDTH, UUID)

from .decoding import MAX_HEALTH, MAX_STATE, ColumnsError

_VARINT = 0
_LEN = 2
#: StatusColumns' fields (the row field each holds, as a column), with their wire types
_FRAMEWORK_IDS = 1 << 3 | _LEN
_EXECUTOR_IDS = 2 << 3 | _LEN
_TASK_IDS = 3 << 3 | _LEN
_STATES = 4 << 3 | _LEN  # packed
_UUIDS = 5 << 3 | _LEN
_STATUSES = 6 << 3 | _LEN
_LATEST_STATES = 7 << 3 | _LEN  # packed
_HEALTHS = 8 << 3 | _LEN  # packed
_MAX_STATE = MAX_STATE  # C copies in the compiled build
_MAX_HEALTH = MAX_HEALTH
_HEALTHY = 1


def _put_varint(out, value):
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_blob(out, key, value):
    out.append(key)
    _put_varint(out, len(value))
    out += value


def _put_texts(out, key, rows, index):
    """Field `key` once per row: the row's string at `index`."""
    for row in rows:
        _put_blob(out, key, _text_bytes(row[index]))
    return 0


def _put_blobs(out, key, rows, index):
    """Field `key` once per row: the row's bytes at `index`."""
    for row in rows:
        _put_blob(out, key, row[index])
    return 0


def _put_ints(out, key, rows, index):
    """A packed column `key`: each row's integer at `index`."""
    packed = bytearray()
    for row in rows:
        _put_varint(packed, row[index])
    _put_blob(out, key, packed)


def _varint_size(value):
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _blob_size(n):
    return 1 + _varint_size(n) + n


def _text_bytes(value):
    if type(value) is not str:
        raise ColumnsError(f"a string field's value is a {type(value).__name__}, not a str")
    return value.encode("utf-8")


def _check_update_row(row):
    """Raise ColumnsError unless `row` is an update row whose values fit the schema."""
    if type(row) is not tuple or len(row) != UPDATE_ROW_WIDTH:
        raise ColumnsError(f"an update row must be a tuple of {UPDATE_ROW_WIDTH} fields, not {row!r:.80}")
    state = row[STATE]
    health = row[HEALTH]
    latest = row[LATEST_STATE]
    if not (0 <= state <= _MAX_STATE and 0 <= latest <= _MAX_STATE and 0 <= health <= _MAX_HEALTH):
        raise ColumnsError(f"a state, latest state or health out of range: {state}, {latest}, {health}")
    return 0


def _check_ack_row(row, width):
    if type(row) is not tuple or len(row) != width:
        raise ColumnsError(f"an ack row must be a tuple of {width} fields, not {row!r:.80}")
    return 0


# -- compiled build only: writing at a C pointer -------------------------------------
def _utf8(value, size):
    """A pointer to the UTF-8 of the str `value` (CPython keeps it in the str), its
    length stored at `size`."""
    if type(value) is not str:
        raise ColumnsError(f"a string field's value is a {type(value).__name__}, not a str")
    return PyUnicode_AsUTF8AndSize(value, size)


def _text_size(value):
    """The size of a string field holding `value`."""
    _utf8(value, cython.address(size))
    return _blob_size(size)


def _w_varint(w, pos, value):
    """Write `value` as a varint at w[pos]; the position after it."""
    while value >= 0x80:
        w[pos] = (value & 0x7F) | 0x80
        value >>= 7
        pos += 1
    w[pos] = value
    return pos + 1


def _w_blob(w, pos, key, src, n):
    w[pos] = key
    pos = _w_varint(w, pos + 1, n)
    memcpy(w + pos, src, n)
    return pos + n


def _w_text(w, pos, key, value):
    src = _utf8(value, cython.address(n))
    return _w_blob(w, pos, key, src, n)


def _w_bytes(w, pos, key, value):
    return _w_blob(w, pos, key, PyBytes_AS_STRING(value), len(value))


def _w_texts(w, pos, key, rows, index):
    """Field `key` once per row: the row's string at `index`."""
    for row in rows:
        pos = _w_text(w, pos, key, row[index])
    return pos


def _w_blobs(w, pos, key, rows, index):
    """Field `key` once per row: the row's bytes at `index`."""
    for row in rows:
        pos = _w_bytes(w, pos, key, row[index])
    return pos


def _w_ints(w, pos, key, size, rows, index):
    """A packed column `key` of `size` bytes: each row's integer at `index`."""
    w[pos] = key
    pos = _w_varint(w, pos + 1, size)
    for row in rows:
        pos = _w_varint(w, pos, row[index])
    return pos


def _finish(out, w, pos):
    if pos != len(out):  # a bug here, never bad input: the sizes are computed from the same rows
        raise AssertionError(f"wrote {pos} bytes into a message of {len(out)}")
    return out


def _encode_updates_compiled(rows):
    inner = 0
    states = latests = healths = 0
    for row in rows:
        _check_update_row(row)
        inner += _text_size(row[FRAMEWORK_ID]) + _text_size(row[EXECUTOR_ID]) + _text_size(row[TASK_ID])
        uuid = row[UUID]
        status = row[STATUS]
        inner += _blob_size(len(uuid)) + _blob_size(len(status))
        states += _varint_size(row[STATE])
        healths += _varint_size(row[HEALTH])
        latests += _varint_size(row[LATEST_STATE])
    if rows:
        inner += _blob_size(states) + _blob_size(latests) + _blob_size(healths)
    out = PyBytes_FromStringAndSize(cython.NULL, _blob_size(inner))
    w = cython.cast(wbuf, PyBytes_AS_STRING(out))
    w[0] = 1 << 3 | _LEN
    pos = _w_varint(w, 1, inner)
    pos = _w_texts(w, pos, _FRAMEWORK_IDS, rows, FRAMEWORK_ID)
    pos = _w_texts(w, pos, _EXECUTOR_IDS, rows, EXECUTOR_ID)
    pos = _w_texts(w, pos, _TASK_IDS, rows, TASK_ID)
    if rows:
        pos = _w_ints(w, pos, _STATES, states, rows, STATE)
    pos = _w_blobs(w, pos, _UUIDS, rows, UUID)
    pos = _w_blobs(w, pos, _STATUSES, rows, STATUS)
    if rows:
        pos = _w_ints(w, pos, _LATEST_STATES, latests, rows, LATEST_STATE)
        pos = _w_ints(w, pos, _HEALTHS, healths, rows, HEALTH)
    return _finish(out, w, pos)


def _encode_acks_compiled(first, second, rows):
    if second is None:
        width, task_at, uuid_at = ACK_ROW_WIDTH, ACK_TASK_ID, ACK_UUID
    else:
        width, task_at, uuid_at = EXECUTOR_ACK_ROW_WIDTH, EXECUTOR_ACK_TASK_ID, EXECUTOR_ACK_UUID
    size = _text_size(first)
    if second is not None:
        size += _text_size(second)
    for row in rows:
        _check_ack_row(row, width)
        if second is None:
            size += _text_size(row[ACK_ID])
        uuid = row[uuid_at]
        size += _text_size(row[task_at]) + _blob_size(len(uuid))
    out = PyBytes_FromStringAndSize(cython.NULL, size)
    w = cython.cast(wbuf, PyBytes_AS_STRING(out))
    pos = _w_text(w, 0, 1 << 3 | _LEN, first)
    if second is not None:
        pos = _w_text(w, pos, 2 << 3 | _LEN, second)
    else:
        pos = _w_texts(w, pos, 2 << 3 | _LEN, rows, ACK_ID)
    pos = _w_texts(w, pos, 3 << 3 | _LEN, rows, task_at)
    pos = _w_blobs(w, pos, 4 << 3 | _LEN, rows, uuid_at)
    return _finish(out, w, pos)


# -- the encoders ----------------------------------------------------------------------
def encode_updates(rows):
    """The bytes of an ExecutorStatusUpdate, StatusUpdateMessage or Updates carrying
    `rows` (tuples as `decode_updates` returns them)."""
    if _COMPILED:
        return _encode_updates_compiled(rows)
    for row in rows:
        _check_update_row(row)
    inner = bytearray()
    _put_texts(inner, _FRAMEWORK_IDS, rows, FRAMEWORK_ID)
    _put_texts(inner, _EXECUTOR_IDS, rows, EXECUTOR_ID)
    _put_texts(inner, _TASK_IDS, rows, TASK_ID)
    if rows:
        _put_ints(inner, _STATES, rows, STATE)
    _put_blobs(inner, _UUIDS, rows, UUID)
    _put_blobs(inner, _STATUSES, rows, STATUS)
    if rows:
        _put_ints(inner, _LATEST_STATES, rows, LATEST_STATE)
        _put_ints(inner, _HEALTHS, rows, HEALTH)
    out = bytearray()
    _put_blob(out, 1 << 3 | _LEN, inner)
    return bytes(out)


def encode_acks(first, second, rows):
    """The bytes of an ack: field 1 the string `first`, then for rows of (field 2, task
    id, uuid) (second None) or, with field 2 the string `second`, of (task id, uuid)."""
    if _COMPILED:
        return _encode_acks_compiled(first, second, rows)
    if second is None:
        width, task_at, uuid_at = ACK_ROW_WIDTH, ACK_TASK_ID, ACK_UUID
    else:
        width, task_at, uuid_at = EXECUTOR_ACK_ROW_WIDTH, EXECUTOR_ACK_TASK_ID, EXECUTOR_ACK_UUID
    for row in rows:
        _check_ack_row(row, width)
    out = bytearray()
    _put_blob(out, 1 << 3 | _LEN, _text_bytes(first))
    if second is not None:
        _put_blob(out, 2 << 3 | _LEN, _text_bytes(second))
    else:
        _put_texts(out, 2 << 3 | _LEN, rows, ACK_ID)
    _put_texts(out, 3 << 3 | _LEN, rows, task_at)
    _put_blobs(out, 4 << 3 | _LEN, rows, uuid_at)
    return bytes(out)


# -- reconciliation: the tasks of a call, the status of an answer ----------------------
def _id_field(out, key, value):
    """An id submessage ({required string value = 1}) holding `value`, as field `key`."""
    inner = bytearray()
    _put_blob(inner, 1 << 3 | _LEN, _text_bytes(value))
    _put_blob(out, key, inner)
    return 0


def _id_field_size(value):
    return _blob_size(_text_size(value))


def _w_id(w, pos, key, value):
    src = _utf8(value, cython.address(n))
    w[pos] = key
    pos = _w_varint(w, pos + 1, _blob_size(n))
    return _w_blob(w, pos, 1 << 3 | _LEN, src, n)


def _reconcile_entry_size(row):
    """The size of a Reconcile.Task holding the (task id, agent id) `row`."""
    size = _id_field_size(row[RECONCILE_TASK_ID])
    if row[RECONCILE_AGENT_ID]:
        size += _id_field_size(row[RECONCILE_AGENT_ID])
    return size


def _encode_reconcile_compiled(framework_id, tasks):
    size = _id_field_size(framework_id)
    for row in tasks:
        _check_ack_row(row, 2)  # (task id, agent id)
        size += _blob_size(_reconcile_entry_size(row))
    out = PyBytes_FromStringAndSize(cython.NULL, size)
    w = cython.cast(wbuf, PyBytes_AS_STRING(out))
    pos = _w_id(w, 0, 1 << 3 | _LEN, framework_id)
    for row in tasks:
        w[pos] = 2 << 3 | _LEN
        pos = _w_varint(w, pos + 1, _reconcile_entry_size(row))
        pos = _w_id(w, pos, 1 << 3 | _LEN, row[RECONCILE_TASK_ID])
        if row[RECONCILE_AGENT_ID]:
            pos = _w_id(w, pos, 2 << 3 | _LEN, row[RECONCILE_AGENT_ID])
    return _finish(out, w, pos)


def encode_reconcile(framework_id, tasks):
    """The bytes of a Reconcile call of the framework `framework_id` naming `tasks`,
    (task id, agent id) pairs, the agent id "" when unknown (no agent_id field)."""
    if _COMPILED:
        return _encode_reconcile_compiled(framework_id, tasks)
    out = bytearray()
    _id_field(out, 1 << 3 | _LEN, framework_id)
    for row in tasks:
        _check_ack_row(row, 2)  # (task id, agent id)
        entry = bytearray()
        _id_field(entry, 1 << 3 | _LEN, row[RECONCILE_TASK_ID])
        if row[RECONCILE_AGENT_ID]:
            _id_field(entry, 2 << 3 | _LEN, row[RECONCILE_AGENT_ID])
        _put_blob(out, 2 << 3 | _LEN, entry)
    return bytes(out)


def answer_status(task_id, state, agent_id, health, shared):
    """The bytes of a TaskStatus the master makes: `task_id` (field 1), `state` (2),
    then `shared` as it is (the serialised fields its answers have in common: message,
    source, reason, timestamp), then the agent id (7) unless "" and `healthy` (11) when
    `health` is reported. Not in field-number order, which protobuf parses the same."""
    if not 0 <= state <= _MAX_STATE or not 0 <= health <= _MAX_HEALTH:
        raise ColumnsError(f"a state or health out of range: {state}, {health}")
    if _COMPILED:
        size = _id_field_size(task_id) + 1 + _varint_size(state) + len(shared)
        if agent_id:
            size += _id_field_size(agent_id)
        if health:
            size += 2
        out = PyBytes_FromStringAndSize(cython.NULL, size)
        w = cython.cast(wbuf, PyBytes_AS_STRING(out))
        pos = _w_id(w, 0, 1 << 3 | _LEN, task_id)
        w[pos] = 2 << 3 | _VARINT
        pos = _w_varint(w, pos + 1, state)
        memcpy(w + pos, PyBytes_AS_STRING(shared), len(shared))
        pos += len(shared)
        if agent_id:
            pos = _w_id(w, pos, 7 << 3 | _LEN, agent_id)
        if health:
            w[pos] = 11 << 3 | _VARINT
            w[pos + 1] = 1 if health == _HEALTHY else 0
            pos += 2
        return _finish(out, w, pos)
    buf = bytearray()
    _id_field(buf, 1 << 3 | _LEN, task_id)
    buf.append(2 << 3 | _VARINT)
    _put_varint(buf, state)
    buf += shared
    if agent_id:
        _id_field(buf, 7 << 3 | _LEN, agent_id)
    if health:
        buf.append(11 << 3 | _VARINT)
        buf.append(1 if health == _HEALTHY else 0)
    return bytes(buf)
