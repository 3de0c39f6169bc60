"""Envelope codec and dispatch table: the first thing every received frame goes through.

Owns the wire framing of every corral message (a 12-byte little-endian header, the
sender's transport address, then the protobuf body: `encode`, `decode`, `Envelope`),
batches of envelopes packed into one ZeroMQ frame (`encode_batch`), and `Dispatcher`,
which turns frames into handler calls: it reads a pyzmq socket until it is empty
(`drain`), checks and decodes each frame, unpacks batches, looks the type up in a table
and calls the handler or, for a `Route`, parses the body and calls the engine's handler
with the sender and the time. Bad input never raises; it is counted and reported.
`send` puts frames on a socket.

One source for both builds: run as plain Python this is the pure-Python twin; Cython
compiles it with the declarations in envelope.pxd. The compiled build writes frames
straight into the bytes object it returns, and receives straight through libzmq (see
`libzmq`), bypassing pyzmq's per-message Python call (see ``select_drain_path``).
"""
from __future__ import annotations

import enum
import logging
import struct
import sys

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

from .decoding import ColumnsError
from .libzmq import fallback_reason

MAGIC = 0xC7
VERSION = 1
HEADER_SIZE = 12
BATCH_TYPE = 0xFFFF
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
#: the connections an authenticated drain remembers as taken, besides the last one
PEERS_TAKEN = 8

# C-typed copies of the constants above (module-level C globals in the compiled build).
_MAGIC = MAGIC
_VERSION = VERSION
_HDR = HEADER_SIZE
_BATCH = BATCH_TYPE

#: drain: a frame counts at least one unit of work per 2**8 bytes
_BYTES_PER_UNIT_SHIFT = 8

_HEADER = struct.Struct("<BBHIHH")
_U32 = struct.Struct("<I")
_LOG = logging.getLogger("corral._core")


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


def _check_header(p, start, end):
    """Validate the header of the envelope in p[start:end]; return a _HEADER_ERRORS index."""
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


class DispatchError(enum.IntEnum):
    """Why a frame or envelope was not handled, as passed to ``on_error``."""

    MALFORMED = 1
    UNKNOWN_TYPE = 2
    OVERSIZED = 3
    HANDLER_FAILED = 4
    REFUSED = 5


class DrainPath(enum.Enum):
    """How ``Dispatcher.drain`` receives frames (see ``select_drain_path``)."""

    UNRESOLVED = "unresolved"  # no drain yet: chosen on first use, when zmq is loaded
    LIBZMQ = "libzmq"  # compiled build: zmq_msg_recv called directly on socket.underlying
    PYZMQ = "pyzmq"  # socket.recv(zmq.NOBLOCK) for every frame


#: Which receive path ``Dispatcher.drain`` uses in this process.
DRAIN_PATH = DrainPath.UNRESOLVED
#: Why the compiled build is not using LIBZMQ ("" when it is, or in the pure build).
DRAIN_FALLBACK_REASON = ""


def _follow(route, frame, start, end):
    """Deliver the header-checked envelope in frame[start:end] as ``route`` says."""
    p = frame
    sender_len = p[start + 8] | (p[start + 9] << 8)
    begin = start + _HDR
    try:
        if _COMPILED:
            sender = _cached_id(p + begin, sender_len)
        else:
            sender = frame[begin : begin + sender_len].decode("utf-8")
    except (ColumnsError, UnicodeDecodeError):
        raise EnvelopeError("the sender is not UTF-8") from None
    try:
        message = route.parse(frame[begin + sender_len : end])
    except route.parse_errors as exc:
        route.undecodable(sender, exc)
        return 0
    route.handle(sender, message, route.clock())
    return 0


class Route:
    """What to do with the envelopes of one type, for a handler that wants the message
    rather than the Envelope: the dispatcher parses the body with ``parse(body)`` and
    calls ``handle(sender, message, clock())``, the sender as str (the compiled build
    reuses one str per recent sender). A body that ``parse`` rejects with one of
    ``parse_errors`` goes to ``undecodable(sender, exc)`` instead, and the envelope
    counts as dispatched: the frame was sound, its body is the receiver's to judge."""

    __slots__ = ("parse", "handle", "clock", "parse_errors", "undecodable")

    def __init__(self, parse, handle, clock, parse_errors, undecodable):
        for name, fn in (("parse", parse), ("handle", handle), ("clock", clock), ("undecodable", undecodable)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable")
        self.parse = parse
        self.handle = handle
        self.clock = clock
        self.parse_errors = parse_errors
        self.undecodable = undecodable


class Dispatcher:
    """Routes frames to the handler registered for their message type.

    Counters (see ``counters()``): ``received`` wire frames given to ``dispatch`` or read
    by ``drain``; ``dispatched`` envelopes (batch members included) whose handler
    returned; ``malformed`` frames or batch members that failed to parse (a truncated
    batch counts once, after its intact members were dispatched); ``unknown_type``
    envelopes with no handler; ``oversized`` wire frames longer than max_frame_size
    (dropped unread); ``handler_failed`` envelopes whose handler raised; ``refused``
    frames ``drain`` dropped unread because their connection's principal is missing or
    revoked (see ``authenticate``).
    """

    def __init__(self, max_frame_size=DEFAULT_MAX_FRAME_SIZE, on_error=None):
        if max_frame_size < _HDR:
            raise ValueError(f"max_frame_size {max_frame_size} is below the header size")
        self._max_frame_size = max_frame_size
        self._on_error = on_error
        self._handlers = []
        self._received = 0
        self._dispatched = 0
        self._malformed = 0
        self._unknown_type = 0
        self._oversized = 0
        self._handler_failed = 0
        self._refused = 0
        self._sink = None
        self._revoked = frozenset()
        self._peer = None
        self._peer_ok = False
        self._taken_ids = []
        self._taken_principals = []

    @property
    def max_frame_size(self):
        return self._max_frame_size

    def register(self, msg_type, handler):
        """Call ``handler(envelope)`` for every envelope of ``msg_type``, or, when
        ``handler`` is a Route, do what it says (replaces any handler of the type)."""
        if not 0 <= msg_type < _BATCH:
            raise ValueError(f"message type {msg_type} outside 0..0xFFFE")
        if type(handler) is not Route and not callable(handler):
            raise TypeError("handler must be callable or a Route")
        missing = msg_type + 1 - len(self._handlers)
        if missing > 0:
            self._handlers.extend([None] * missing)
        self._handlers[msg_type] = handler

    def counters(self):
        return {
            "received": self._received,
            "dispatched": self._dispatched,
            "malformed": self._malformed,
            "unknown_type": self._unknown_type,
            "oversized": self._oversized,
            "handler_failed": self._handler_failed,
            "refused": self._refused,
        }

    def authenticate(self, sink, revoked=()):
        """From now on ``drain`` takes each frame's sender from its connection: the
        principal the connection authenticated as (ZeroMQ's User-Id property, which a
        ZAP handler sets during a CurveZMQ handshake). Before a frame's envelopes are
        dispatched, ``sink.principal`` is set to that principal (a str). A frame without
        one, or whose principal is in ``revoked`` (a set of str), is dropped unread and
        counted as ``refused``. ``dispatch`` is not affected."""
        self._sink = sink
        self.revoke(revoked)

    def revoke(self, revoked):
        """Replace the principals whose frames are refused, e.g. once their keys were
        revoked: the connections they made before are refused too."""
        self._revoked = frozenset(revoked)
        self._peer = None
        self._peer_ok = False
        self._taken_ids = []
        self._taken_principals = []

    def _new_peer(self, user_id):
        """A frame from a connection that is neither the last one nor one of the last
        taken (``user_id``: its User-Id as bytes, b"" when it has none): whether it is
        taken; if so, the sink gets its principal (interned: the same str object for
        every frame of a principal, which the engines compare by identity first) and the
        connection is remembered among the last PEERS_TAKEN taken, else the refusal is
        reported (once for a run of frames from one connection: each is counted)."""
        self._peer = user_id
        try:
            principal = user_id.decode("utf-8")
        except UnicodeDecodeError:
            principal = ""
        self._peer_ok = bool(principal) and principal not in self._revoked
        if self._peer_ok:
            principal = sys.intern(principal)
            self._sink.principal = principal
            if len(self._taken_ids) >= PEERS_TAKEN:
                del self._taken_ids[0]
                del self._taken_principals[0]
            self._taken_ids.append(user_id)
            self._taken_principals.append(principal)
        else:
            self._report(DispatchError.REFUSED, f"frames from principal {principal!r}, whose keys were revoked"
                         if principal else "frames without an authenticated principal", None)
        return self._peer_ok

    def _taken_peer(self, index):
        """A frame from the connection remembered at ``index`` among the last taken
        (frames of a few connections interleave: a PULL socket takes them in turn)."""
        principal = self._taken_principals[index]
        self._peer = self._taken_ids[index]
        self._peer_ok = True
        self._sink.principal = principal
        return True

    def dispatch(self, frame):
        """Handle one wire frame; return how many envelopes were handled (handler returned)."""
        if not isinstance(frame, bytes):
            raise TypeError(f"frame must be bytes, not {type(frame).__name__}")
        return self._receive(frame)

    def drain(self, socket, limit):
        """Receive and dispatch frames from a pyzmq socket without blocking until it is
        empty or about ``limit`` units of work were done, then return the number of
        frames read. A frame counts one unit per envelope it carries (a batch frame, each
        of its envelopes) and at least one per 256 bytes (a message of many rows is much
        work in one envelope); the frame that crosses the limit is finished."""
        if DRAIN_PATH is DrainPath.UNRESOLVED:
            select_drain_path()
        if _COMPILED and DRAIN_PATH is DrainPath.LIBZMQ:
            handle = getattr(socket, "underlying", None)
            if handle is not None and not socket.closed:
                n = self._drain_libzmq(socket, handle, limit)
                if n < 0:  # an error other than EAGAIN: let pyzmq raise it
                    n = -n - 1
                    return n + self._drain_pyzmq(socket, limit - n)
                return n
        return self._drain_pyzmq(socket, limit)

    def _drain_pyzmq(self, socket, limit):
        import zmq  # the socket is pyzmq's, so this is a dict lookup

        noblock = zmq.NOBLOCK
        again = zmq.Again
        recv = socket.recv
        n = 0
        used = 0
        if self._sink is not None:
            while used < limit:
                try:
                    message = recv(noblock, copy=False)
                except again:
                    break
                n += 1
                try:
                    user_id = message.get("User-Id").encode("utf-8")
                except zmq.ZMQError:  # no such property: not an authenticated connection
                    user_id = b""
                if user_id == self._peer:
                    taken = self._peer_ok
                elif user_id in self._taken_ids:
                    taken = self._taken_peer(self._taken_ids.index(user_id))
                else:
                    taken = self._new_peer(user_id)
                if not taken:
                    self._received += 1
                    self._refused += 1
                    used += 1
                    continue
                frame = message.bytes
                used += max(self._receive(frame), len(frame) >> _BYTES_PER_UNIT_SHIFT, 1)
            return n
        while used < limit:
            try:
                frame = recv(noblock)
            except again:
                break
            n += 1
            used += max(self._receive(frame), len(frame) >> _BYTES_PER_UNIT_SHIFT, 1)
        return n

    def _drain_libzmq(self, socket, handle, limit):
        """Compiled build only: receive with libzmq directly. Returns the frames read, or
        -(frames read) - 1 when zmq_msg_recv failed with an error other than EAGAIN."""
        sock = cython.cast(cython.p_void, handle)
        # pyzmq's Socket._closed (declared public in its .pxd) is a plain field read;
        # Socket.closed asks libzmq every time.
        closed_attr = "_closed" if hasattr(socket, "_closed") else "closed"
        api = libzmq_api()
        n = 0
        used = 0
        while used < limit:
            if n and getattr(socket, closed_attr):  # a handler closed it: handle freed
                return -n - 1
            api.msg_init(cython.address(msg))
            size = api.msg_recv(cython.address(msg), sock, ZMQ_DONTWAIT)
            if size < 0:
                api.msg_close(cython.address(msg))
                if api.last_errno() == EAGAIN:
                    return n
                return -n - 1
            n += 1
            if self._sink is not None:
                user_id = api.msg_gets(cython.address(msg), b"User-Id")
                id_len = 0 if user_id == cython.NULL else strlen(user_id)
                peer = self._peer
                if peer is not None and id_len == len(peer) and (
                        id_len == 0 or memcmp(user_id, PyBytes_AS_STRING(peer), id_len) == 0):
                    taken = self._peer_ok
                else:
                    ids = self._taken_ids
                    i = 0
                    while i < len(ids):
                        peer = ids[i]
                        if id_len == len(peer) and memcmp(user_id, PyBytes_AS_STRING(peer), id_len) == 0:
                            break
                        i += 1
                    if i < len(ids):
                        taken = self._taken_peer(i)
                    else:
                        taken = self._new_peer(user_id[:id_len] if id_len else b"")
                if not taken:
                    api.msg_close(cython.address(msg))
                    self._received += 1
                    self._refused += 1
                    used += 1
                    continue
            if size > self._max_frame_size:
                api.msg_close(cython.address(msg))
                self._received += 1
                self._oversize(size)
                used += 1
                continue
            data = cython.cast(cython.p_char, api.msg_data(cython.address(msg)))
            frame = data[:size]
            api.msg_close(cython.address(msg))
            used += max(self._receive(frame), size >> _BYTES_PER_UNIT_SHIFT, 1)
        return n

    def _receive(self, frame):
        self._received += 1
        end = len(frame)
        if end > self._max_frame_size:
            self._oversize(end)
            return 0
        return self._dispatch_at(frame, 0, end, True)

    def _dispatch_at(self, frame, start, end, outer):
        """Dispatch the envelope in frame[start:end] (a batch only when ``outer``)."""
        p = frame
        err = _check_header(p, start, end)
        if err != _OK:
            self._malformed += 1
            self._report(DispatchError.MALFORMED, _HEADER_ERRORS[err], None)
            return 0
        msg_type = p[start + 2] | (p[start + 3] << 8)
        if msg_type == _BATCH:
            if outer and p[start + 8] == 0 and p[start + 9] == 0:
                return self._dispatch_batch(frame, start + _HDR, end)
            self._malformed += 1
            self._report(
                DispatchError.MALFORMED, "batch nested in a batch or with a sender", None
            )
            return 0
        handlers = self._handlers
        handler = handlers[msg_type] if msg_type < len(handlers) else None
        if handler is None:
            self._unknown_type += 1
            self._report(DispatchError.UNKNOWN_TYPE, f"no handler for type {msg_type}", None)
            return 0
        try:
            if type(handler) is Route:
                _follow(handler, frame, start, end)
            else:
                handler(_envelope(frame, start, end))
        except Exception as exc:
            self._handler_failed += 1
            self._report(
                DispatchError.HANDLER_FAILED, f"handler for type {msg_type} raised {exc!r}", exc
            )
            return 0
        self._dispatched += 1
        return 1

    def _dispatch_batch(self, frame, pos, end):
        p = frame
        handled = 0
        while pos < end:
            if end - pos < 4:
                self._malformed += 1
                self._report(DispatchError.MALFORMED, "truncated batch length prefix", None)
                break
            size = p[pos + 3]
            size = (size << 8) | p[pos + 2]
            size = (size << 8) | p[pos + 1]
            size = (size << 8) | p[pos]
            pos += 4
            if size > end - pos:
                self._malformed += 1
                self._report(DispatchError.MALFORMED, "batch member runs past the end", None)
                break
            handled += self._dispatch_at(frame, pos, pos + size, False)
            pos += size
        return handled

    def _oversize(self, size):
        self._oversized += 1
        self._report(
            DispatchError.OVERSIZED,
            f"frame of {size} bytes exceeds max_frame_size {self._max_frame_size}",
            None,
        )

    def _report(self, kind, detail, exc):
        if self._on_error is not None:
            try:
                self._on_error(kind, detail, exc)
            except Exception:
                _LOG.exception("Dispatcher on_error callback raised")


def select_drain_path(prefer_libzmq=True):
    """Choose (and return) how ``Dispatcher.drain`` receives; sets ``DRAIN_PATH``.

    The compiled build looks up libzmq's zmq_msg_* functions in the libzmq that pyzmq has
    loaded (zmq must be imported by then) and uses them directly; when that fails, or in
    the pure build, or with ``prefer_libzmq=False``, every frame goes through
    ``socket.recv(zmq.NOBLOCK)`` and ``DRAIN_FALLBACK_REASON`` says why.
    """
    global DRAIN_PATH, DRAIN_FALLBACK_REASON
    reason = fallback_reason(prefer_libzmq, "select_drain_path(prefer_libzmq=False)")
    if reason and _COMPILED and prefer_libzmq:
        _LOG.warning("corral._core: Dispatcher.drain falls back to pyzmq recv: %s", reason)
    DRAIN_PATH = DrainPath.PYZMQ if reason else DrainPath.LIBZMQ
    DRAIN_FALLBACK_REASON = reason
    return DRAIN_PATH
