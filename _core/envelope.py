"""Envelope codec: the framing of every corral message on the wire.

Owns the frame layout: a 12-byte little-endian header, the sender's transport address,
then the protobuf body (`encode`, `decode`, `Envelope`), and batches of envelopes packed
into one ZeroMQ frame (`encode_batch`). `dispatch` takes frames off a socket to their
handlers; `send` puts them on a socket.

One source for both builds: run as plain Python this is the pure-Python twin; Cython
compiles it with the declarations in envelope.pxd (the compiled build writes a frame
straight into the bytes object it returns).
"""
from __future__ import annotations

import struct

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

MAGIC = 0xC7
VERSION = 1
HEADER_SIZE = 12
BATCH_TYPE = 0xFFFF
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

# C-typed copies of the constants above (module-level C globals in the compiled build).
_MAGIC = MAGIC
_VERSION = VERSION
_HDR = HEADER_SIZE
_BATCH = BATCH_TYPE

_HEADER = struct.Struct("<BBHIHH")
_U32 = struct.Struct("<I")


class EnvelopeError(ValueError):
    """A frame that is not a well-formed envelope (or arguments that cannot make one)."""


# Header check results, shared by decode() and the Dispatcher (index into _HEADER_ERRORS).
_OK = 0
_SHORT = 1
_BAD_MAGIC = 2
_BAD_VERSION = 3
_SENDER_PAST_END = 4
_HEADER_ERRORS = (
    "",
    "frame shorter than the 12-byte header",
    "bad magic byte",
    "unsupported version",
    "sender_len runs past the end of the frame",
)


def _check_header(frame, start, end):
    """Validate the header of the envelope in frame[start:end]; return a _HEADER_ERRORS index."""
    p = frame
    if end - start < _HDR:
        return _SHORT
    if p[start] != _MAGIC:
        return _BAD_MAGIC
    if p[start + 1] != _VERSION:
        return _BAD_VERSION
    if start + _HDR + (p[start + 8] | (p[start + 9] << 8)) > end:
        return _SENDER_PAST_END
    return _OK


class Envelope:
    """One decoded message. Fields are read lazily from the frame it came in."""

    def __repr__(self):
        return (
            f"Envelope(type={self._type}, seq={self.seq}, sender={self.sender!r}, "
            f"body=<{self._end - self._start - _HDR - self._sender_len} bytes>)"
        )

    @property
    def type(self):
        """Message type (u16)."""
        return self._type

    @property
    def seq(self):
        """Sender's sequence number (u32)."""
        p = self._frame
        i = self._start + 4
        seq = p[i + 3]
        seq = (seq << 8) | p[i + 2]
        seq = (seq << 8) | p[i + 1]
        return (seq << 8) | p[i]

    @property
    def sender(self):
        """The sender's transport address (bytes)."""
        begin = self._start + _HDR
        return self._frame[begin : begin + self._sender_len]

    @property
    def body(self):
        """The message body (bytes)."""
        return self._frame[self._start + _HDR + self._sender_len : self._end]


def _envelope(frame, start, end):
    """The Envelope for a header-checked p[start:end] of ``frame``."""
    p = frame
    env = Envelope.__new__(Envelope)
    env._frame = frame
    env._start = start
    env._end = end
    env._type = p[start + 2] | (p[start + 3] << 8)
    env._sender_len = p[start + 8] | (p[start + 9] << 8)
    return env


def decode(frame):
    """Decode one frame into an Envelope; raise EnvelopeError if it is malformed.

    A batch frame decodes to an envelope of type BATCH_TYPE (``Dispatcher`` unpacks them).
    """
    if not isinstance(frame, bytes):
        raise TypeError(f"frame must be bytes, not {type(frame).__name__}")
    err = _check_header(frame, 0, len(frame))
    if err != _OK:
        raise EnvelopeError(_HEADER_ERRORS[err])
    return _envelope(frame, 0, len(frame))


def _check_fields(msg_type, seq, sender, body):
    if not isinstance(sender, bytes) or not isinstance(body, bytes):
        raise TypeError("sender and body must be bytes")
    if not 0 <= msg_type < _BATCH:
        raise EnvelopeError(f"message type {msg_type} outside 0..0xFFFE")
    if not 0 <= seq <= 0xFFFFFFFF:
        raise EnvelopeError(f"seq {seq} outside 0..2**32-1")
    if len(sender) > 0xFFFF:
        raise EnvelopeError(f"sender of {len(sender)} bytes is longer than 65535")


def _put_header(w, msg_type, seq, sender_len):
    """Write a header at w[0:12] (compiled build only: w is a C pointer)."""
    w[0] = _MAGIC
    w[1] = _VERSION
    w[2] = msg_type & 0xFF
    w[3] = msg_type >> 8
    w[4] = seq & 0xFF
    w[5] = (seq >> 8) & 0xFF
    w[6] = (seq >> 16) & 0xFF
    w[7] = seq >> 24
    w[8] = sender_len & 0xFF
    w[9] = sender_len >> 8
    w[10] = 0
    w[11] = 0


def encode(msg_type, seq, sender, body):
    """One frame: header (flags 0), then ``sender``, then ``body``."""
    _check_fields(msg_type, seq, sender, body)
    if _COMPILED:
        sender_len = len(sender)
        out = PyBytes_FromStringAndSize(cython.NULL, _HDR + sender_len + len(body))
        w = cython.cast(wbuf, PyBytes_AS_STRING(out))
        _put_header(w, msg_type, seq, sender_len)
        memcpy(w + _HDR, PyBytes_AS_STRING(sender), sender_len)
        memcpy(w + _HDR + sender_len, PyBytes_AS_STRING(body), len(body))
        return out
    return _HEADER.pack(_MAGIC, _VERSION, msg_type, seq, len(sender), 0) + sender + body


def encode_batch(frames):
    """One frame of type BATCH_TYPE carrying ``frames`` (each ``u32 length | frame``)."""
    if not isinstance(frames, list):
        frames = list(frames)
    for frame in frames:
        if not isinstance(frame, bytes):
            raise TypeError(f"batch members must be bytes, not {type(frame).__name__}")
    if _COMPILED:
        size = _HDR
        for frame in frames:
            size += 4 + len(frame)
        out = PyBytes_FromStringAndSize(cython.NULL, size)
        w = cython.cast(wbuf, PyBytes_AS_STRING(out))
        _put_header(w, _BATCH, 0, 0)
        pos = _HDR
        for frame in frames:
            n = len(frame)
            w[pos] = n & 0xFF
            w[pos + 1] = (n >> 8) & 0xFF
            w[pos + 2] = (n >> 16) & 0xFF
            w[pos + 3] = n >> 24
            memcpy(w + pos + 4, PyBytes_AS_STRING(frame), n)
            pos += 4 + n
        return out
    parts = [_HEADER.pack(_MAGIC, _VERSION, _BATCH, 0, 0, 0)]
    for frame in frames:
        parts.append(_U32.pack(len(frame)))
        parts.append(frame)
    return b"".join(parts)
