"""The data path between the driver and its executors: what they say to each other
(`Msg`), and frames on a TCP connection (4-byte length, then a pickled list of messages:
what one side has for the other at one moment leaves as one frame).

Messages are tuples whose first item is a `Msg` value (a plain int on the wire):

  executor -> driver
    (REGISTER, executor_id, token, block_address, pid, cores)   first frame of a link
    (RESULTS, [(task_id, Outcome, payload, (seconds, shuffle_written, shuffle_read))])
    (HEARTBEAT,)
  driver -> executor
    (STAGE, blob_id, blob)        a pickled `StageTask`, sent before the stage's first task
    (FORGET_STAGE, blob_id)
    (BROADCAST, broadcast_id, blob) / (DROP_BROADCAST, broadcast_id)
    (LAUNCH, [(task_id, blob_id, split, attempt, shuffle_inputs)])
    (KILL, task_id)               drop the task if it has not started
    (UNPERSIST, rdd_id) / (DROP_SHUFFLE, shuffle_id)
    (HEARTBEAT,) / (STOP,)

`shuffle_inputs` maps shuffle id -> [(executor id, block address, [map ids])]: where the
task's reduce partition's non-empty blocks are.
"""
from __future__ import annotations

import enum
import pickle
import socket
import struct
import threading
from typing import Any

LENGTH = struct.Struct("<I")


class Msg(enum.IntEnum):
    REGISTER = 1
    RESULTS = 2
    HEARTBEAT = 3
    STAGE = 10
    FORGET_STAGE = 11
    BROADCAST = 12
    DROP_BROADCAST = 13
    LAUNCH = 14
    KILL = 15
    UNPERSIST = 16
    DROP_SHUFFLE = 17
    STOP = 18


class Outcome(enum.IntEnum):
    SUCCESS = 0
    #: the user's code raised: payload (pickled exception or None, type name, message, traceback)
    FAILED = 1
    #: a shuffle block could not be read: payload (shuffle id, map id, executor id, message)
    FETCH_FAILED = 2
    #: killed before it started
    KILLED = 3


def encode(messages: list[tuple[Any, ...]]) -> bytes:
    return pickle.dumps(messages, 5)


decode = pickle.loads


class Link:
    """One TCP connection carrying frames; `send` may be called from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._send_lock = threading.Lock()
        self._reader = sock.makefile("rb", buffering=1 << 16)

    def send(self, messages: list[tuple[Any, ...]]) -> None:
        payload = encode(messages)
        header = LENGTH.pack(len(payload))
        with self._send_lock:
            if len(payload) < 65536:
                self.sock.sendall(header + payload)
            else:  # no copy of a large payload
                self.sock.sendall(header)
                self.sock.sendall(payload)

    def receive(self) -> list[tuple[Any, ...]] | None:
        """The next frame's messages; None when the peer closed the connection."""
        try:
            header = self._reader.read(LENGTH.size)
            if len(header) < LENGTH.size:
                return None
            (size,) = LENGTH.unpack(header)
            payload = self._reader.read(size)
        except OSError:
            return None
        if len(payload) < size:
            return None
        return decode(payload)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
