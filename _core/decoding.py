"""The status path's decoders: protobuf wire bytes -> rows, with no protobuf objects in
between. The updates of StatusColumns (inside ExecutorStatusUpdate, StatusUpdateMessage
and Updates), the three acks of corral.proto, and the fields of a serialised TaskStatus
the status path needs; `encoding` is the other direction.

Owns reading protobuf's wire format (a cursor, `_Reader`) and the id caches: the
compiled build hands out one str per recently read framework, executor or agent id and
per task id (`canonical_task_id`), so that the engines' dict lookups by those ids hit by
identity.

Decoding follows protobuf's rules (tests check it against the generated classes):
unknown fields are skipped, a message field seen twice is merged (its columns
concatenated), a singular field seen twice keeps the last value, and a packed column
may also arrive unpacked. Malformed bytes raise ColumnsError (truncated fields, bad
UTF-8, columns of different lengths, a required field missing).

One source for both builds: plain Python as is; compiled by Cython with decoding.pxd.
"""
from __future__ import annotations

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5

#: the largest TaskState (corral.proto; states are 0..MAX_STATE) and health (0 not
#: reported, 1 healthy, 2 unhealthy): a row with another value is malformed
MAX_STATE = 13
MAX_HEALTH = 2
_MAX_STATE = MAX_STATE  # C copies in the compiled build
_MAX_HEALTH = MAX_HEALTH
#: an int32 varint's low 32 bits, and what to take off the negative ones (C integers in
#: the compiled build: a literal this large would be a Python int there)
_LOW32 = 0xFFFFFFFF
_INT32_MAX = 0x7FFFFFFF
_TWO32 = 0x100000000
#: `_id_hash`'s seed and multiplier (odd, with well-spread bits: from MurmurHash3's finaliser)
_HASH_SEED = 0x9E3779B97F4A7C15
_HASH_MUL = 0xFF51AFD7ED558CCD


class ColumnsError(ValueError):
    """Bytes that are not a well-formed status-path message (or rows that cannot make one)."""



class _Reader:
    """A cursor over data[pos:end] (made by `_reader`)."""

    __slots__ = ("data", "pos", "end")


    def varint(self):
        data = self.data
        pos = self.pos
        if pos < self.end and data[pos] < 0x80:  # one byte: every key, most lengths and values
            self.pos = pos + 1
            return data[pos]
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
        value = self.varint() & _LOW32
        return value - _TWO32 if value > _INT32_MAX else value

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
            if _COMPILED:  # (no slice: straight from the message's buffer)
                return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(self.data) + start, n, cython.NULL)
            return self.data[start:start + n].decode("utf-8")
        except UnicodeDecodeError:
            raise ColumnsError("a string field is not UTF-8") from None

    def id_text(self, previous):
        """`text` for an id that repeats from row to row and message to message (a
        framework, executor or agent id): the compiled build hands out `previous` (the
        id read before it in the same column, or None) when it has the same bytes, else
        the str it made for the same bytes recently (`_cached_text`), which also has its
        hash cached."""
        if not _COMPILED:
            return self.text()
        n = self.length()
        start = self.pos
        self.pos = start + n
        src = cython.cast(cbuf, PyBytes_AS_STRING(self.data)) + start
        if previous is not None:
            known = PyUnicode_AsUTF8AndSize(previous, cython.address(size))
            if size == n and memcmp(known, src, n) == 0:
                return previous
        return _cached_id(src, n)

    def task_text(self):
        """`text` for a task id: through the task id cache in the compiled build."""
        if not _COMPILED:
            return self.text()
        n = self.length()
        start = self.pos
        self.pos = start + n
        return _cached_text(cython.cast(cbuf, PyBytes_AS_STRING(self.data)) + start, n, _TASK_ID_SLOTS,
                            _TASK_ID_CACHE_SLOTS, None)

    def blob(self):
        n = self.length()
        start = self.pos
        self.pos = start + n
        if _COMPILED:
            return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self.data) + start, n)
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


def _reader(data, pos, end):
    """A _Reader over data[pos:end]: made by ``__new__`` and filled in here (a C call in
    the compiled build; calling the type would parse its arguments)."""
    reader = _Reader.__new__(_Reader)
    reader.data = data
    reader.pos = pos
    reader.end = end
    return reader


#: compiled build: recently decoded ids, by a hash of their UTF-8 (`_cached_text`), in
#: sets of _CACHE_WAYS slots (C structs of hash, length and str: `_IdSlot` in
#: decoding.pxd), a set on one 64-byte line: a lookup reads that line, then the str whose
#: hash and length match
_CACHE_WAYS = 4
_ID_CACHE_SLOTS = 64
#: ... and recently decoded task ids (many more of them, each seen a few times per update
#: on every hop): one str per task id, its hash computed once, so that the engines'
#: dict lookups by task id compare by identity. Sized for tens of thousands of live
#: tasks: a direct-mapped cache of 16 384 slots missed about 44% of the lookups of
#: 10 000 task ids seen in turn (two ids in one slot evict each other every time).
_TASK_ID_CACHE_SLOTS = 1 << 15
#: the way a miss in a full set replaces next (round robin)
_next_way = 0


def _slot_array(count):
    """(compiled build) `count` empty cache slots, the first at the start of a 64-byte
    line; they live as long as the module."""
    block = calloc(count * cython.sizeof(_IdSlot) + 64, 1)
    if block == cython.NULL:
        raise MemoryError()
    return cython.cast(cython.pointer(_IdSlot), (cython.cast(cython.size_t, block) + 63) & ~cython.cast(cython.size_t, 63))


if _COMPILED:
    _ID_SLOTS = _slot_array(_ID_CACHE_SLOTS)
    _TASK_ID_SLOTS = _slot_array(_TASK_ID_CACHE_SLOTS)


def _cached_id(src, n):
    """`_cached_text` through the id cache (framework, executor and agent ids, senders)."""
    return _cached_text(src, n, _ID_SLOTS, _ID_CACHE_SLOTS, None)


def canonical_task_id(task_id):
    """The str the decoders hand out for `task_id` from now on: in the compiled build, the
    one the task id cache holds for those bytes, else `task_id` itself, put there; in
    the pure build, `task_id`. An engine that keys its tasks by this str (rather than by
    the str parsed from a launch message) has its dict lookups by decoded task ids hit
    by identity, without reading the stored key (a cache miss each, with thousands of
    tasks)."""
    if not _COMPILED:
        return task_id
    src = PyUnicode_AsUTF8AndSize(task_id, cython.address(size))
    return _cached_text(cython.cast(cbuf, src), size, _TASK_ID_SLOTS, _TASK_ID_CACHE_SLOTS, task_id)


def _id_hash(src, n):
    """A 32-bit hash of src[0:n] (compiled build only), eight bytes at a time: each
    word mixed in by a multiply and a shift (ids are tens of bytes: a byte at a time,
    each step waiting on the last multiply, took most of a cache lookup). Never 0: the
    caches mark an empty slot with hash 0."""
    h = _HASH_SEED ^ n
    i = 0
    while i + 8 <= n:
        memcpy(cython.address(word), src + i, 8)
        h = (h ^ word) * _HASH_MUL
        h ^= h >> 32
        i += 8
    word = 0
    memcpy(cython.address(word), src + i, n - i)
    h = (h ^ word) * _HASH_MUL
    h ^= h >> 29
    return cython.cast(cython.uint, h ^ (h >> 32)) | 1


def _cached_text(src, n, slots, count, made):
    """The str of the UTF-8 at src[0:n] (compiled build only: src is a C pointer): the
    one in a slot of its set among `slots` (`count` of them, a power of two) with the
    same bytes, else `made` (a str of those bytes) or, when None, a new one, which takes
    an empty slot of the set (hash 0), or the next way in turn when the set is full. Only
    a slot whose hash and length match has its str read."""
    global _next_way
    h = _id_hash(src, n)
    base = h & (count - _CACHE_WAYS)
    free = -1
    for way in range(_CACHE_WAYS):
        entry = slots + base + way
        if entry.hash == h:
            if entry.size == n:
                known = PyUnicode_AsUTF8AndSize(cython.cast(object, entry.text), cython.address(size))
                if memcmp(known, src, n) == 0:
                    return cython.cast(str, entry.text)
        elif entry.hash == 0 and free < 0:
            free = base + way
    if made is not None:
        text = made
    else:
        try:
            text = PyUnicode_DecodeUTF8(cython.cast(cython.p_char, src), n, cython.NULL)
        except UnicodeDecodeError:
            raise ColumnsError("a string field is not UTF-8") from None
    if free < 0:
        free = base + _next_way
        _next_way = (_next_way + 1) & (_CACHE_WAYS - 1)
    entry = slots + free
    Py_XDECREF(entry.text)
    Py_INCREF(text)
    entry.text = cython.cast(cython.pointer(PyObject), text)
    entry.hash = h
    entry.size = n
    return text


def _read_columns(reader, columns):
    """Append the fields of one StatusColumns (the reader spans exactly it)."""
    while reader.pos < reader.end:
        key = reader.varint()
        field = key >> 3
        wire_type = key & 7
        if (field == 1 or field == 2) and wire_type == _LEN:
            column = columns[field - 1]
            column.append(reader.id_text(column[len(column) - 1] if column else None))
        elif field == 3 and wire_type == _LEN:
            columns[2].append(reader.task_text())
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
    reader = _reader(data, 0, len(data))
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
            fid = reader.id_text(None)
        elif key == (2 << 3 | _LEN):
            eid = reader.id_text(None)
        elif key == (3 << 3 | _LEN):
            tid = reader.task_text()
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


#: how `_id_value` hands out an id: through the task id cache, through the id cache, or
#: only whether it is empty ("" or _NOT_EMPTY, no str made for it)
_TASK_ID = 0
_CACHED_ID = 1
_EMPTINESS = 2
_NOT_EMPTY = "(not empty)"


def _id_value(reader, how):
    """The value (field 1) of the id message (TaskID, AgentID) at the reader, a LEN field
    whose key has been read, made as `how` says; a value seen twice: the last counts;
    None when it has none."""
    n = reader.length()
    outer = reader.end
    reader.end = reader.pos + n
    value = None
    while reader.pos < reader.end:
        key = reader.varint()
        if key == (1 << 3 | _LEN):
            if how == _CACHED_ID:
                value = reader.id_text(None)
            elif how == _TASK_ID:
                value = reader.task_text()
            else:
                m = reader.length()  # (checked against the end)
                reader.pos += m
                value = _NOT_EMPTY if m else ""
        else:
            reader.skip(key & 7)
    reader.end = outer
    return value


def agent_id_of(data):
    """The agent id of a serialised TaskStatus ("" when it has none), read from its
    bytes through the id cache: what the scheduler driver acknowledges an update with,
    without a protobuf attribute read (which builds and drops a wrapper object)."""
    reader = _reader(data, 0, len(data))
    agent_id = ""
    while reader.pos < reader.end:
        key = reader.varint()
        if key == (7 << 3 | _LEN):
            value = _id_value(reader, _CACHED_ID)
            if value is not None:
                agent_id = value
        else:
            reader.skip(key & 7)
    return agent_id


def status_fields(data):
    """(task_id, state, health, agent_id) of a serialised TaskStatus, read straight from
    its bytes (what the status path needs of a status, without a protobuf object):
    health as a row carries it (0 not reported, 1 healthy, 2 unhealthy), agent_id ""
    when it has none. A message field seen twice is merged and a singular field keeps
    its last value, as protobuf parses them. ColumnsError when the bytes are malformed,
    the task id or state is missing, or the state is out of range."""
    return _status_fields(data, _TASK_ID)


def status_state(data):
    """The state of a serialised TaskStatus, -1 when its task id is empty: `status_fields`
    without making a str of the task id (the executor driver's check of a status where
    its user calls; the status is read again when it is queued). ColumnsError as there."""
    fields = _status_fields(data, _EMPTINESS)
    return fields[1] if fields[0] else -1


def _status_fields(data, task_id_as):
    reader = _reader(data, 0, len(data))
    task_id = None
    agent_id = ""
    state = -1
    health = 0
    while reader.pos < reader.end:
        key = reader.varint()
        if key == (1 << 3 | _LEN) or key == (7 << 3 | _LEN):
            value = _id_value(reader, task_id_as if key == (1 << 3 | _LEN) else _CACHED_ID)
            if value is not None:
                if key == (1 << 3 | _LEN):
                    task_id = value
                else:
                    agent_id = value
        elif key == (2 << 3 | _VARINT):
            state = reader.int32()
        elif key == (11 << 3 | _VARINT):
            health = 1 if reader.varint() else 2
        else:
            reader.skip(key & 7)
    if task_id is None:
        raise ColumnsError("a TaskStatus without a task id")
    if not 0 <= state <= _MAX_STATE:
        raise ColumnsError("a TaskStatus without a state" if state == -1 else f"a state out of range: {state}")
    return (task_id, state, health, agent_id)


def decode_updates(data):
    """The rows of an ExecutorStatusUpdate, StatusUpdateMessage or Updates: tuples of
    (framework_id, executor_id, task_id, state, uuid, status, health, latest_state),
    latest_state being the state when the sender sent no latest states."""
    row = _one_row(data)
    if row is not None:  # unbatched: the common case
        return [row]
    columns = [[], [], [], [], [], [], [], []]
    reader = _reader(data, 0, len(data))
    while reader.pos < reader.end:
        key = reader.varint()
        if key == (1 << 3 | _LEN):
            n = reader.length()  # (before reading pos: length() moves it)
            stop = reader.pos + n
            inner = _reader(data, reader.pos, stop)
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
    fids, eids, tids, states, uuids, statuses, healths = columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[7]
    return [(fids[i], eids[i], tids[i], states[i], uuids[i], statuses[i], healths[i], latest[i]) for i in range(n)]


def _check_range(column, largest, name):
    for value in column:
        if value < 0 or value > largest:
            raise ColumnsError(f"a {name} out of range: {value}")
    return 0


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
    reader = _reader(data, 0, len(data))
    while reader.pos < reader.end:
        key = reader.varint()
        field = key >> 3
        if key & 7 != _LEN or field < 1 or field > 4:
            reader.skip(key & 7)
        elif field == 1:
            first = reader.id_text(None)
        elif field == 2:
            second = reader.id_text(second)
            seconds.append(second)
        elif field == 3:
            task_ids.append(reader.task_text())
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
        return (first, second, [(task_ids[i], uuids[i]) for i in range(n)])
    if len(seconds) != n:
        raise ColumnsError("the columns of an ack differ in length")
    return (first, None, [(seconds[i], task_ids[i], uuids[i]) for i in range(n)])
