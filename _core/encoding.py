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

from .decoding import MAX_HEALTH, MAX_STATE, ColumnsError

_VARINT = 0
_LEN = 2

#: StatusColumns' fields, in row order: 1-3 strings, 4 packed states, 5-6 bytes,
#: 7 packed latest states, 8 packed healths (a row puts latest state last)
_STRING_FIELDS = 3
_ROW_WIDTH = 8
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


def _put_ints(out, key, rows, index):
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
    if type(row) is not tuple or len(row) != _ROW_WIDTH:
        raise ColumnsError(f"an update row must be a tuple of {_ROW_WIDTH} fields, not {row!r:.80}")
    state = row[3]
    health = row[6]
    latest = row[7]
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


def _w_ints(w, pos, key, size, rows, index):
    """A packed column of `size` bytes: rows[*][index] as varints."""
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
        inner += _text_size(row[0]) + _text_size(row[1]) + _text_size(row[2])
        uuid = row[4]
        status = row[5]
        inner += _blob_size(len(uuid)) + _blob_size(len(status))
        states += _varint_size(row[3])
        healths += _varint_size(row[6])
        latests += _varint_size(row[7])
    if rows:
        inner += _blob_size(states) + _blob_size(latests) + _blob_size(healths)
    out = PyBytes_FromStringAndSize(cython.NULL, _blob_size(inner))
    w = cython.cast(wbuf, PyBytes_AS_STRING(out))
    w[0] = 1 << 3 | _LEN
    pos = _w_varint(w, 1, inner)
    for field in range(1, _STRING_FIELDS + 1):
        key = field << 3 | _LEN
        for row in rows:
            pos = _w_text(w, pos, key, row[field - 1])
    if rows:
        pos = _w_ints(w, pos, 4 << 3 | _LEN, states, rows, 3)
    for field in (5, 6):
        key = field << 3 | _LEN
        for row in rows:
            pos = _w_bytes(w, pos, key, row[field - 1])
    if rows:
        pos = _w_ints(w, pos, 7 << 3 | _LEN, latests, rows, 7)
        pos = _w_ints(w, pos, 8 << 3 | _LEN, healths, rows, 6)
    return _finish(out, w, pos)


def _encode_acks_compiled(first, second, rows):
    base = 1 if second is None else 0
    size = _text_size(first)
    if second is not None:
        size += _text_size(second)
    for row in rows:
        _check_ack_row(row, base + 2)
        if base:
            size += _text_size(row[0])
        uuid = row[base + 1]
        size += _text_size(row[base]) + _blob_size(len(uuid))
    out = PyBytes_FromStringAndSize(cython.NULL, size)
    w = cython.cast(wbuf, PyBytes_AS_STRING(out))
    pos = _w_text(w, 0, 1 << 3 | _LEN, first)
    if second is not None:
        pos = _w_text(w, pos, 2 << 3 | _LEN, second)
    else:
        for row in rows:
            pos = _w_text(w, pos, 2 << 3 | _LEN, row[0])
    for row in rows:
        pos = _w_text(w, pos, 3 << 3 | _LEN, row[base])
    for row in rows:
        pos = _w_bytes(w, pos, 4 << 3 | _LEN, row[base + 1])
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
    for field in range(1, _STRING_FIELDS + 1):
        key = field << 3 | _LEN
        for row in rows:
            _put_blob(inner, key, _text_bytes(row[field - 1]))
    if rows:
        _put_ints(inner, 4 << 3 | _LEN, rows, 3)
    for field in (5, 6):
        key = field << 3 | _LEN
        for row in rows:
            _put_blob(inner, key, row[field - 1])
    if rows:
        _put_ints(inner, 7 << 3 | _LEN, rows, 7)
        _put_ints(inner, 8 << 3 | _LEN, rows, 6)
    out = bytearray()
    _put_blob(out, 1 << 3 | _LEN, inner)
    return bytes(out)


def encode_acks(first, second, rows):
    """The bytes of an ack: field 1 the string `first`, then for rows of (field 2, task
    id, uuid) (second None) or, with field 2 the string `second`, of (task id, uuid)."""
    if _COMPILED:
        return _encode_acks_compiled(first, second, rows)
    base = 1 if second is None else 0
    for row in rows:
        _check_ack_row(row, base + 2)
    out = bytearray()
    _put_blob(out, 1 << 3 | _LEN, _text_bytes(first))
    if second is not None:
        _put_blob(out, 2 << 3 | _LEN, _text_bytes(second))
    else:
        for row in rows:
            _put_blob(out, 2 << 3 | _LEN, _text_bytes(row[0]))
    for row in rows:
        _put_blob(out, 3 << 3 | _LEN, _text_bytes(row[base]))
    for row in rows:
        _put_blob(out, 4 << 3 | _LEN, row[base + 1])
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
    size = _id_field_size(row[0])
    if row[1]:
        size += _id_field_size(row[1])
    return size


def _encode_reconcile_compiled(framework_id, tasks):
    size = _id_field_size(framework_id)
    for row in tasks:
        _check_ack_row(row, 2)
        size += _blob_size(_reconcile_entry_size(row))
    out = PyBytes_FromStringAndSize(cython.NULL, size)
    w = cython.cast(wbuf, PyBytes_AS_STRING(out))
    pos = _w_id(w, 0, 1 << 3 | _LEN, framework_id)
    for row in tasks:
        w[pos] = 2 << 3 | _LEN
        pos = _w_varint(w, pos + 1, _reconcile_entry_size(row))
        pos = _w_id(w, pos, 1 << 3 | _LEN, row[0])
        if row[1]:
            pos = _w_id(w, pos, 2 << 3 | _LEN, row[1])
    return _finish(out, w, pos)


def encode_reconcile(framework_id, tasks):
    """The bytes of a Reconcile call of the framework `framework_id` naming `tasks`,
    (task id, agent id) pairs, the agent id "" when unknown (no agent_id field)."""
    if _COMPILED:
        return _encode_reconcile_compiled(framework_id, tasks)
    out = bytearray()
    _id_field(out, 1 << 3 | _LEN, framework_id)
    for row in tasks:
        _check_ack_row(row, 2)
        entry = bytearray()
        _id_field(entry, 1 << 3 | _LEN, row[0])
        if row[1]:
            _id_field(entry, 2 << 3 | _LEN, row[1])
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
