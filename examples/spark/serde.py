"""How the engine turns things into bytes: cloudpickle for functions and the RDD graphs
they close over (they run in other processes), pickle for data, and length-prefixed
frames of pickled record batches (zlib-compressed where that makes them smaller) for
shuffle blocks, so that a reader can decode a block frame by frame as it streams in."""
from __future__ import annotations

import enum
import pickle
import struct
import zlib
from typing import Any, BinaryIO, Iterator

import cloudpickle

PROTOCOL = 5
#: records per shuffle frame: large enough that pickling is all C, small enough to stream
FRAME_RECORDS = 8192
#: a frame is kept compressed only if that saves at least this fraction of it
MIN_COMPRESSION_GAIN = 0.1
FRAME_HEADER = struct.Struct("<IB")


class SerialisationError(ValueError):
    """Something the program gave cannot be sent to the executors."""


class Codec(enum.IntEnum):
    RAW = 0
    ZLIB = 1


def dumps_function(value: Any, what: str) -> bytes:
    """`value` (functions, and whatever they close over) as bytes for an executor;
    SerialisationError naming `what` when it cannot be pickled."""
    try:
        return cloudpickle.dumps(value, protocol=PROTOCOL)
    except Exception as exc:
        raise SerialisationError(f"{what} cannot be sent to the executors: {type(exc).__name__}: {exc}") from exc


def dumps(value: Any) -> bytes:
    """Data (task results, records): plain pickle, cloudpickle for what only it handles
    (lambdas inside results)."""
    try:
        return pickle.dumps(value, PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        return cloudpickle.dumps(value, protocol=PROTOCOL)


loads = pickle.loads


def encode_frames(records: list[Any], compress: bool) -> list[bytes]:
    """`records` as frames: header (payload length, codec) + pickled batch."""
    out = []
    for start in range(0, len(records), FRAME_RECORDS):
        payload = pickle.dumps(records[start:start + FRAME_RECORDS], PROTOCOL)
        codec = Codec.RAW
        if compress:
            packed = zlib.compress(payload, 1)
            if len(packed) <= len(payload) * (1 - MIN_COMPRESSION_GAIN):
                payload, codec = packed, Codec.ZLIB
        out.append(FRAME_HEADER.pack(len(payload), codec))
        out.append(payload)
    return out


def decode_frame(codec: int, payload: bytes | memoryview) -> list[Any]:
    if codec == Codec.ZLIB:
        payload = zlib.decompress(payload)
    return pickle.loads(payload)


def read_frames(stream: BinaryIO, length: int) -> Iterator[list[Any]]:
    """Decode the `length` bytes of frames that `stream` yields next, one batch at a time."""
    size = FRAME_HEADER.size
    while length > 0:
        header = stream.read(size)
        if len(header) < size:
            raise EOFError("a shuffle block ended inside a frame header")
        n, codec = FRAME_HEADER.unpack(header)
        payload = stream.read(n)
        if len(payload) < n:
            raise EOFError("a shuffle block ended inside a frame")
        length -= size + n
        yield decode_frame(codec, payload)
