"""Sending frames: `send_frame` and `encode_and_send` queue one frame on a pyzmq socket
without blocking, and say whether ZeroMQ took it.

One source for both builds: run as plain Python this is the pure-Python twin (every
frame through ``socket.send``); Cython compiles it with the declarations in send.pxd,
and the compiled build calls libzmq directly (see `libzmq` and ``select_send_path``).
"""
from __future__ import annotations

import enum
import logging

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False

from .envelope import HEADER_SIZE, _check_fields, encode
from .libzmq import fallback_reason

_HDR = HEADER_SIZE  # (a C global in the compiled build)
_LOG = logging.getLogger("corral._core")


class SendPath(enum.Enum):
    """How ``send_frame`` and ``encode_and_send`` send (see ``select_send_path``)."""

    UNRESOLVED = "unresolved"  # nothing sent yet: chosen on first use, when zmq is loaded
    LIBZMQ = "libzmq"  # compiled build: zmq_send / zmq_msg_send on socket.underlying
    PYZMQ = "pyzmq"  # socket.send(frame, zmq.NOBLOCK) for every frame


#: Which send path ``send_frame`` / ``encode_and_send`` use in this process.
SEND_PATH = SendPath.UNRESOLVED
#: Why the compiled build is not sending through LIBZMQ ("" when it is, or in the pure build).
SEND_FALLBACK_REASON = ""

#: Frames this long or longer are always handed to pyzmq with ``copy=False`` (its
#: zero-copy send); the libzmq path copies the shorter ones. pyzmq's own threshold is
#: 64 KiB, but every zero-copy frame is released through pyzmq's garbage-collector
#: thread, which takes the GIL from the I/O thread: a batched status path sends frames of
#: 40-200 KiB all the time, and copying one (tens of microseconds at most) costs less.
SEND_COPY_THRESHOLD = 4 << 20
_COPY_LIMIT = SEND_COPY_THRESHOLD
# zmq.NOBLOCK and zmq.Again, looked up when a send path is selected (zmq is loaded then).
_NOBLOCK = 1
_Again = None
# SEND_PATH as a C int for the per-frame test (an Enum member lookup is a Python call).
_SEND_UNRESOLVED = 0
_SEND_LIBZMQ = 1
_SEND_PYZMQ = 2
_SEND_MODE = _SEND_UNRESOLVED
# The last socket type seen whose attribute lookup is object's (see _live_handle).
_PLAIN_GETATTR_TYPE = None

def send_frame(socket, frame):
    """Queue ``frame`` on a pyzmq ``socket`` without blocking.

    Returns True when ZeroMQ took the frame, False when it would have had to block
    (EAGAIN: no peer, or the peer's queue is full): the caller counts a drop. Other
    errors raise ``zmq.ZMQError`` as ``socket.send`` does (a closed socket raises
    ENOTSOCK). The compiled build calls libzmq's zmq_send on the socket's handle for
    bytes shorter than ``SEND_COPY_THRESHOLD``; anything else, and every frame in the
    pure build, goes through ``socket.send(frame, zmq.NOBLOCK)``.
    """
    if _SEND_MODE == _SEND_UNRESOLVED:
        select_send_path()
    if _COMPILED and _SEND_MODE == _SEND_LIBZMQ and isinstance(frame, bytes):
        size = len(frame)
        if size < _COPY_LIMIT:
            sock = _live_handle(socket)
            if sock != cython.NULL:
                api = libzmq_api()
                if api.send(sock, PyBytes_AS_STRING(frame), size, ZMQ_DONTWAIT) >= 0:
                    return True
                if api.last_errno() == EAGAIN:
                    return False
                # another error (EINTR, ENOTSUP, ...): the frame was not queued; pyzmq
                # tries again and raises what it would have raised
    return _send_pyzmq(socket, frame)


def encode_and_send(socket, msg_type, seq, sender, body):
    """``send_frame(socket, encode(msg_type, seq, sender, body))`` in one step.

    Raises like ``encode`` for bad fields (before anything is sent). The compiled build
    writes the envelope straight into a libzmq message and sends it, with no
    intermediate bytes object.
    """
    _check_fields(msg_type, seq, sender, body)
    if _SEND_MODE == _SEND_UNRESOLVED:
        select_send_path()
    if _COMPILED and _SEND_MODE == _SEND_LIBZMQ:
        sender_len = len(sender)
        size = _HDR + sender_len + len(body)
        if size < _COPY_LIMIT:
            sock = _live_handle(socket)
            api = libzmq_api()
            if sock != cython.NULL and api.msg_init_size(cython.address(msg), size) == 0:
                w = cython.cast(wbuf, api.msg_data(cython.address(msg)))
                _put_header(w, msg_type, seq, sender_len)
                memcpy(w + _HDR, PyBytes_AS_STRING(sender), sender_len)
                memcpy(w + _HDR + sender_len, PyBytes_AS_STRING(body), len(body))
                if api.msg_send(cython.address(msg), sock, ZMQ_DONTWAIT) >= 0:
                    return True  # libzmq owns the message now
                err = api.last_errno()
                api.msg_close(cython.address(msg))
                if err == EAGAIN:
                    return False
    return _send_pyzmq(socket, encode(msg_type, seq, sender, body))


def _live_handle(socket):
    """Compiled build only: the libzmq handle of an open pyzmq socket, or NULL when the
    socket is closed (its handle is freed) or is not a pyzmq socket."""
    global _PLAIN_GETATTR_TYPE
    cls = type(socket)
    if cls is _PLAIN_GETATTR_TYPE:
        # pyzmq's Socket resolves attributes with object's generic lookup (its
        # __getattr__ only runs for missing names): call that lookup directly rather
        # than through the type's __getattr__ hook, which costs two more type lookups.
        closed = PyObject_GenericGetAttr(socket, "_closed")
        handle = PyObject_GenericGetAttr(socket, "underlying")
    else:
        # pyzmq's Socket._closed is what its own send checks (a plain field read).
        closed = getattr(socket, "_closed", True)
        handle = getattr(socket, "underlying", None)
        if closed is False and handle is not None and (
            getattr(cls, "__getattribute__", None) is object.__getattribute__
        ):
            _PLAIN_GETATTR_TYPE = cls
    if closed or handle is None:
        return cython.NULL
    return cython.cast(cython.p_void, cython.cast(cython.size_t, handle))


def _send_pyzmq(socket, frame):
    try:
        if len(frame) < _COPY_LIMIT:
            socket.send(frame, _NOBLOCK)
        else:
            socket.send(frame, _NOBLOCK, copy=False)
    except _Again:
        return False
    return True


def select_send_path(prefer_libzmq=True):
    """Choose (and return) how ``send_frame`` and ``encode_and_send`` send; sets
    ``SEND_PATH``. Imports zmq (the first send has a pyzmq socket, so it is loaded).

    The compiled build uses libzmq's zmq_send / zmq_msg_* functions, looked up as for the
    drain; when that fails, or in the pure build, or with ``prefer_libzmq=False``, every
    frame goes through ``socket.send(frame, zmq.NOBLOCK)`` and ``SEND_FALLBACK_REASON``
    says why.
    """
    global SEND_PATH, SEND_FALLBACK_REASON, _SEND_MODE, _NOBLOCK, _Again
    import zmq

    _NOBLOCK = zmq.NOBLOCK
    _Again = zmq.Again
    reason = fallback_reason(prefer_libzmq, "select_send_path(prefer_libzmq=False)")
    if reason and _COMPILED and prefer_libzmq:
        _LOG.warning("corral._core: send_frame falls back to pyzmq send: %s", reason)
    SEND_PATH = SendPath.PYZMQ if reason else SendPath.LIBZMQ
    SEND_FALLBACK_REASON = reason
    _SEND_MODE = _SEND_PYZMQ if reason else _SEND_LIBZMQ
    return SEND_PATH
