"""The executor driver's status path, per row: `UpdateSource`, which stamps each status
the user sends and queues it (`send_status_update`), and the loop of the executor
engine's ExecutorStatusUpdateAck handler.

One source for both builds: plain Python as is; compiled by Cython with _status.pxd.
"""
from __future__ import annotations

import struct

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

from corral._core.acks import AckResult, AddResult
from corral._core.decoding import status_fields
from corral._core.rows import EXECUTOR_ACK_TASK_ID, EXECUTOR_ACK_UUID

_FORWARD = AddResult.FORWARD
_ACKED = AckResult.ACKED
#: the twin's packing of an update's time (protobuf's double: little-endian) and uuid
_DOUBLE = struct.Struct("<d").pack
_UUID = struct.Struct(">8sQ").pack
#: the compiled build copies the time's bytes as they are in memory
_LITTLE_ENDIAN = struct.pack("=d", 1.0) == struct.pack("<d", 1.0)


class UpdateSource:
    """An executor driver's status updates as the rows it queues (`tracker`, keyed by
    task id) and sends: each serialised TaskStatus gets `stamp` appended (the driver's
    source, executor and agent ids, then the timestamp's key; protobuf merges the fields
    appended to a message), the time, `uuid_key` and a new uuid: `prefix` (8 random
    bytes, the driver's) then a counter, big-endian. The user's message is neither
    copied nor changed."""

    __slots__ = ("framework_id", "executor_id", "stamp", "_prefix", "_uuid_key", "_count", "_tracker")

    def __init__(self, framework_id, executor_id, prefix, stamp, uuid_key, tracker):
        if type(prefix) is not bytes or len(prefix) != 8:
            raise ValueError(f"a uuid prefix is 8 bytes, not {prefix!r}")
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.stamp = stamp
        self._prefix = prefix
        self._uuid_key = uuid_key
        self._count = 0
        self._tracker = tracker

    def add(self, serialised, now):
        """Queue the update of `serialised` (a TaskStatus's bytes) on its task's stream.
        Returns its row when it heads the stream (to send now), else None. ColumnsError
        when the bytes lack a task id or state."""
        tid, state, health, _agent_id = status_fields(serialised)
        count = self._count
        self._count = count + 1
        if _COMPILED and _LITTLE_ENDIAN:
            uuid = PyBytes_FromStringAndSize(cython.NULL, 16)
            out = PyBytes_AS_STRING(uuid)
            memcpy(out, PyBytes_AS_STRING(self._prefix), 8)
            for i in range(8):
                out[15 - i] = cython.cast(cython.char, (count >> (8 * i)) & 0xFF)
            n = len(serialised)
            m = len(self.stamp)
            k = len(self._uuid_key)
            data = PyBytes_FromStringAndSize(cython.NULL, n + m + 8 + k + 16)
            out = PyBytes_AS_STRING(data)
            memcpy(out, PyBytes_AS_STRING(serialised), n)
            memcpy(out + n, PyBytes_AS_STRING(self.stamp), m)
            memcpy(out + n + m, cython.address(now), 8)
            memcpy(out + n + m + 8, PyBytes_AS_STRING(self._uuid_key), k)
            memcpy(out + n + m + 8 + k, PyBytes_AS_STRING(uuid), 16)
        else:
            uuid = _UUID(self._prefix, count)
            data = b"".join((serialised, self.stamp, _DOUBLE(now), self._uuid_key, uuid))
        row = (self.framework_id, self.executor_id, tid, state, uuid, data, health, state)
        if self._tracker.add(tid, uuid, row, now) is _FORWARD:
            return row
        return None


def executor_acks(rows, tracker, now):
    """The executor driver's share of an ExecutorStatusUpdateAck (rows of (task id,
    uuid)): each ack of a stream's head moves it on; a stream left empty is dropped.
    Returns (heads, emptied): the streams' next updates, to send, and whether a stream
    was left empty."""
    heads = []
    emptied = False
    for row in rows:
        key = row[EXECUTOR_ACK_TASK_ID]
        result, nxt = tracker.ack_next(key, row[EXECUTOR_ACK_UUID], now)
        if result is _ACKED:
            if nxt is None:
                tracker.remove(key)
                emptied = True
            else:
                heads.append(nxt)
    return heads, emptied
