"""Protobuf wire codec for the status path: StatusColumns (inside ExecutorStatusUpdate,
StatusUpdateMessage and Updates) and the three acks of corral.proto, straight between
wire bytes and Python rows, with no protobuf objects in between.

The bytes are exactly protobuf's (tests check both directions against the generated
classes): fields in number order, packed varint columns, strings as UTF-8. Decoding
follows protobuf's rules too: unknown fields are skipped, a message field seen twice is
merged (its columns concatenated), a singular field seen twice keeps the last value,
and a packed column may also arrive unpacked. Malformed bytes raise ColumnsError
(truncated fields, bad UTF-8, columns of different lengths, a required field missing).

One source for both builds: plain Python as is; compiled by Cython with columns.pxd.
"""
from __future__ import annotations

_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5

#: StatusColumns' fields, in row order: 1-3 strings, 4 packed states, 5-6 bytes,
#: 7 packed latest states, 8 packed healths (a row puts latest state last)
_STRING_FIELDS = 3
_ROW_WIDTH = 8
#: the largest TaskState (corral.proto; states are 0..MAX_STATE) and health (0 not
#: reported, 1 healthy, 2 unhealthy): a row with another value is malformed
MAX_STATE = 13
MAX_HEALTH = 2
_MAX_STATE = MAX_STATE  # C copies in the compiled build
_MAX_HEALTH = MAX_HEALTH


class ColumnsError(ValueError):
    """Bytes that are not a well-formed status-path message."""


class _Reader:
    """A cursor over data[pos:end]."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data, pos, end):
        self.data = data
        self.pos = pos
        self.end = end

    def varint(self):
        data = self.data
        pos = self.pos
        result = 0
        shift = 0
        while True:
            if pos >= self.end:
                raise ColumnsError("truncated varint")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 63:
                raise ColumnsError("varint longer than 10 bytes")
        self.pos = pos
        return result

    def int32(self):
        """A varint read as int32 (negative values arrive sign-extended to 64 bits)."""
        value = self.varint() & 0xFFFFFFFF
        return value - 0x100000000 if value > 0x7FFFFFFF else value

    def length(self):
        """The length of a LEN field, checked against the end."""
        n = self.varint()
        if n > self.end - self.pos:
            raise ColumnsError("field runs past the end of its message")
        return n

    def text(self):
        n = self.length()
        start = self.pos
        self.pos = start + n
        try:
            return self.data[start:start + n].decode("utf-8")
        except UnicodeDecodeError:
            raise ColumnsError("a string field is not UTF-8") from None

    def blob(self):
        n = self.length()
        start = self.pos
        self.pos = start + n
        return self.data[start:start + n]

    def skip(self, wire_type):
        if wire_type == _VARINT:
            self.varint()
        elif wire_type == _LEN:
            self._advance(self.length())
        elif wire_type == _I64:
            self._advance(8)
        elif wire_type == _I32:
            self._advance(4)
        else:
            raise ColumnsError(f"unsupported wire type {wire_type}")

    def _advance(self, n):
        if n > self.end - self.pos:
            raise ColumnsError("field runs past the end of its message")
        self.pos += n

    def ints(self, wire_type, column):
        """Append a packed run (LEN) or one unpacked value (VARINT) to `column`."""
        if wire_type == _VARINT:
            column.append(self.int32())
            return 0
        if wire_type != _LEN:
            raise ColumnsError(f"an integer column with wire type {wire_type}")
        n = self.length()  # (before reading pos: length() moves it)
        stop = self.pos + n
        outer = self.end
        self.end = stop
        while self.pos < stop:
            column.append(self.int32())
        self.end = outer
        return 0


def _read_columns(reader, columns):
    """Append the fields of one StatusColumns (the reader spans exactly it)."""
    while reader.pos < reader.end:
        key = reader.varint()
        field = key >> 3
        wire_type = key & 7
        if 1 <= field <= _STRING_FIELDS and wire_type == _LEN:
            columns[field - 1].append(reader.text())
        elif (field == 5 or field == 6) and wire_type == _LEN:
            columns[field - 1].append(reader.blob())
        elif field == 4 or field == 7 or field == 8:
            reader.ints(wire_type, columns[field - 1])
        else:
            reader.skip(wire_type)


def _one_row(data):
    """The row of a message of exactly one update in the plain shape this codec writes
    (one StatusColumns, each field once, nothing unknown); None for any other shape,
    which the general reader then takes (and judges)."""
    reader = _Reader(data, 0, len(data))
    if reader.end < 2 or data[0] != (1 << 3 | _LEN):
        return None
    reader.pos = 1
    try:
        n = reader.length()
    except ColumnsError:
        return None
    if reader.pos + n != reader.end:
        return None
    seen = 0
    fid = eid = tid = None
    uuid = status = None
    state = health = latest = 0
    while reader.pos < reader.end:
        key = reader.varint()
        if key >> 3 > 8:
            return None
        bit = 1 << (key >> 3)
        if seen & bit:
            return None
        seen |= bit
        if key == (1 << 3 | _LEN):
            fid = reader.text()
        elif key == (2 << 3 | _LEN):
            eid = reader.text()
        elif key == (3 << 3 | _LEN):
            tid = reader.text()
        elif key == (5 << 3 | _LEN):
            uuid = reader.blob()
        elif key == (6 << 3 | _LEN):
            status = reader.blob()
        elif key == (4 << 3 | _LEN) or key == (7 << 3 | _LEN) or key == (8 << 3 | _LEN):
            n = reader.length()
            stop = reader.pos + n
            value = reader.int32()
            if reader.pos != stop:
                return None  # more than one value
            if key == (4 << 3 | _LEN):
                state = value
            elif key == (7 << 3 | _LEN):
                latest = value
            else:
                health = value
        else:
            return None
    if seen & 0x17E != 0x17E:  # fields 1-6 and 8 (7, the latest state, may be missing)
        return None
    if not seen & 0x80:
        latest = state
    if not (0 <= state <= _MAX_STATE and 0 <= latest <= _MAX_STATE and 0 <= health <= _MAX_HEALTH):
        return None  # the general reader names the bad value
    return (fid, eid, tid, state, uuid, status, health, latest)


def decode_updates(data):
    """The rows of an ExecutorStatusUpdate, StatusUpdateMessage or Updates: tuples of
    (framework_id, executor_id, task_id, state, uuid, status, health, latest_state),
    latest_state being the state when the sender sent no latest states."""
    row = _one_row(data)
    if row is not None:  # unbatched: the common case
        return [row]
    columns = [[], [], [], [], [], [], [], []]
    reader = _Reader(data, 0, len(data))
    while reader.pos < reader.end:
        key = reader.varint()
        if key == (1 << 3 | _LEN):
            n = reader.length()  # (before reading pos: length() moves it)
            stop = reader.pos + n
            inner = _Reader(data, reader.pos, stop)
            _read_columns(inner, columns)
            reader.pos = stop
        else:
            reader.skip(key & 7)
    n = len(columns[2])
    latest = columns[6]
    if not latest:
        latest = columns[3]
    if (len(columns[0]) != n or len(columns[1]) != n or len(columns[3]) != n or len(columns[4]) != n
            or len(columns[5]) != n or len(columns[7]) != n or len(latest) != n):
        raise ColumnsError("the columns of a StatusColumns differ in length")
    _check_range(columns[3], _MAX_STATE, "state")
    _check_range(latest, _MAX_STATE, "latest state")
    _check_range(columns[7], _MAX_HEALTH, "health")
    return list(zip(columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[7], latest))


def _check_range(column, largest, name):
    for value in column:
        if value < 0 or value > largest:
            raise ColumnsError(f"a {name} out of range: {value}")
    return 0


def _put_varint(out, value):
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_blob(out, key, value):
    out.append(key)
    _put_varint(out, len(value))
    out += value


def _put_ints(out, key, rows, index, largest):
    packed = bytearray()
    for row in rows:
        value = row[index]
        if value < 0 or value > largest:
            raise ColumnsError(f"an integer column's value out of range: {value}")
        _put_varint(packed, value)
    _put_blob(out, key, packed)


def _varint_size(value):
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _blob_size(n):
    return 1 + _varint_size(n) + n


def _encode_one(row):
    """encode_updates for one row, written in one pass into a buffer of the exact size."""
    fid = row[0].encode("utf-8")
    eid = row[1].encode("utf-8")
    tid = row[2].encode("utf-8")
    state = row[3]
    uuid = row[4]
    status = row[5]
    health = row[6]
    latest = row[7]
    if not (0 <= state <= _MAX_STATE and 0 <= latest <= _MAX_STATE and 0 <= health <= _MAX_HEALTH):
        raise ColumnsError(f"a state, latest state or health out of range: {state}, {latest}, {health}")
    state_size = _varint_size(state)
    latest_size = _varint_size(latest)
    health_size = _varint_size(health)
    inner = (_blob_size(len(fid)) + _blob_size(len(eid)) + _blob_size(len(tid)) + _blob_size(state_size)
             + _blob_size(len(uuid)) + _blob_size(len(status)) + _blob_size(latest_size) + _blob_size(health_size))
    out = bytearray()
    out.append(1 << 3 | _LEN)
    _put_varint(out, inner)
    _put_blob(out, 1 << 3 | _LEN, fid)
    _put_blob(out, 2 << 3 | _LEN, eid)
    _put_blob(out, 3 << 3 | _LEN, tid)
    out.append(4 << 3 | _LEN)
    out.append(state_size)
    _put_varint(out, state)
    _put_blob(out, 5 << 3 | _LEN, uuid)
    _put_blob(out, 6 << 3 | _LEN, status)
    out.append(7 << 3 | _LEN)
    out.append(latest_size)
    _put_varint(out, latest)
    out.append(8 << 3 | _LEN)
    out.append(health_size)
    _put_varint(out, health)
    return bytes(out)


def encode_updates(rows):
    """The bytes of an ExecutorStatusUpdate, StatusUpdateMessage or Updates carrying
    `rows` (tuples as `decode_updates` returns them)."""
    if len(rows) == 1 and len(rows[0]) == _ROW_WIDTH:
        return _encode_one(rows[0])
    inner = bytearray()
    for row in rows:
        if len(row) != _ROW_WIDTH:
            raise ColumnsError(f"an update row has {len(row)} fields, not {_ROW_WIDTH}")
    for field in range(1, _STRING_FIELDS + 1):
        key = field << 3 | _LEN
        for row in rows:
            _put_blob(inner, key, row[field - 1].encode("utf-8"))
    if rows:
        _put_ints(inner, 4 << 3 | _LEN, rows, 3, _MAX_STATE)
    for field in (5, 6):
        key = field << 3 | _LEN
        for row in rows:
            _put_blob(inner, key, row[field - 1])
    if rows:
        _put_ints(inner, 7 << 3 | _LEN, rows, 7, _MAX_STATE)
        _put_ints(inner, 8 << 3 | _LEN, rows, 6, _MAX_HEALTH)
    out = bytearray()
    _put_blob(out, 1 << 3 | _LEN, inner)
    return bytes(out)


def decode_acks(data, width):
    """An Acknowledge, StatusUpdateAck (width 3) or ExecutorStatusUpdateAck (width 2):
    (field 1, field 2 or None, rows). Field 1 is a required string; a row is (field 2,
    task id, uuid) for width 3, where field 2 is a column, and (task id, uuid) for width
    2, where field 2 is a required string. A singular field seen twice: the last value
    counts."""
    first = None
    second = None
    seconds = []
    task_ids = []
    uuids = []
    reader = _Reader(data, 0, len(data))
    while reader.pos < reader.end:
        key = reader.varint()
        field = key >> 3
        if key & 7 != _LEN or field < 1 or field > 4:
            reader.skip(key & 7)
        elif field == 1:
            first = reader.text()
        elif field == 2:
            second = reader.text()
            seconds.append(second)
        elif field == 3:
            task_ids.append(reader.text())
        else:
            uuids.append(reader.blob())
    n = len(task_ids)
    if first is None:
        raise ColumnsError("field 1 (an id) missing")
    if len(uuids) != n:
        raise ColumnsError("the task ids and uuids differ in number")
    if width == 2:
        if second is None:
            raise ColumnsError("field 2 (an id) missing")
        if n == 1:
            return (first, second, [(task_ids[0], uuids[0])])
        return (first, second, list(zip(task_ids, uuids)))
    if len(seconds) != n:
        raise ColumnsError("the columns of an ack differ in length")
    if n == 1:
        return (first, None, [(seconds[0], task_ids[0], uuids[0])])
    return (first, None, list(zip(seconds, task_ids, uuids)))


def encode_acks(first, second, rows):
    """The bytes of an ack: field 1 the string `first`, then for rows of (field 2, task
    id, uuid) (second None) or, with field 2 the string `second`, of (task id, uuid)."""
    out = bytearray()
    _put_blob(out, 1 << 3 | _LEN, first.encode("utf-8"))
    if second is not None:
        _put_blob(out, 2 << 3 | _LEN, second.encode("utf-8"))
        base = 0
    else:
        base = 1
        for row in rows:
            if len(row) != 3:
                raise ColumnsError(f"an ack row has {len(row)} fields, not 3")
            _put_blob(out, 2 << 3 | _LEN, row[0].encode("utf-8"))
    for row in rows:
        if len(row) != base + 2:
            raise ColumnsError(f"an ack row has {len(row)} fields, not {base + 2}")
        _put_blob(out, 3 << 3 | _LEN, row[base].encode("utf-8"))
    for row in rows:
        _put_blob(out, 4 << 3 | _LEN, row[base + 1])
    return bytes(out)
