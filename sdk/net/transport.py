"""ZeroMQ transport: the only module of the network layer that imports zmq.

One PULL socket per process receives every frame addressed to it; one PUSH socket per
peer sends. Delivery is at-most-once: a frame that cannot be queued (peer's queue full,
transport closed) is dropped and counted, never retried here; reliability is the
engines' job (acks, retries, reconciliation). One poller loop per process drains the
PULL socket in batches through the `_core` dispatcher; there is no per-message future.

A second, inproc socket lets other threads wake the loop (`wake()`), so driver calls
made from user threads reach the I/O thread without polling.

Wire batching (`batch=True`; off by default here, on by default in `Runtime`): `send`
only encodes and queues the envelope for its peer; `flush()` (the runtime calls it
once per loop iteration, after the engine's actions are performed) sends each peer's
queue as one BATCH frame
(`corral._core.envelope.encode_batch`, split at BATCH_MAX_BYTES) or, for a single envelope, as itself.
The receiving dispatcher unpacks batches, so a batching peer can talk to one that does
not batch. Order per peer is kept; a dropped batch counts each envelope it carried.

CurveZMQ (`curve=CurveLinks(...)`; plaintext without): the PULL socket is a CURVE
server with the process's key pair, behind a ZAP gate (`corral.security.zap`) that
admits only the keys the links' directory knows, on a ZeroMQ context of the transport's
own (one ZAP handler a context); each PUSH socket is a CURVE client of the server key
`curve.server_key(address)` gives (frames towards an address without one are dropped
and counted). Handshakes refused by the gate (`curve_refused`) or failing otherwise
(`curve_failed`: a peer without CurveZMQ, or with the wrong server key) are counted; a
PUSH socket whose handshake fails is made again if the address's server key changed.
"""
from __future__ import annotations

import itertools
import logging
import resource
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from corral._core.envelope import Dispatcher, encode, encode_batch
from corral._core.send import encode_and_send as _encode_and_send
from corral._core.send import send_frame as _send_frame
from corral.net.protocol import PeerEvent

if TYPE_CHECKING:
    from corral.security.links import CurveLinks
    from corral.security.zap import CurveGate

log = logging.getLogger(__name__)


class NoServerKey(LookupError):
    """CurveZMQ is on and no server key is known for a peer's address."""


#: envelopes handled per drain before the loop sends what they caused and looks at
#: timers and commands again: small enough that the processes along a path work at once
#: instead of in turns (bench_status_updates, batched: 256 KiB frames drained 4096 at a
#: time, 26-31 k updates/s; 32 KiB frames and this limit, 48 k/s)
DRAIN_BATCH = 1024
#: frames queued towards one peer before new ones are dropped (at-most-once)
SEND_HWM = 100_000
#: on close, ZeroMQ keeps trying to deliver queued frames this long (in the background)
CLOSE_LINGER_MS = 2000
#: frames above this size are rejected (counted) by the dispatcher
MAX_FRAME_SIZE = 16 * 1024 * 1024
#: frames above this size make ZeroMQ drop the sender's connection before we see them
HARD_FRAME_LIMIT = 4 * MAX_FRAME_SIZE


#: ZMTP heartbeats on every peer connection: a peer that stops answering for
#: HEARTBEAT_TIMEOUT_MS is treated as gone, even when no TCP reset ever arrives
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 5000

#: with batching on, the envelopes queued for one peer go out in frames of at most this
#: size (a few hundred envelopes each)
BATCH_MAX_BYTES = 32 * 1024
#: ZeroMQ sockets a process may open: libzmq's default, 1023, would cap a master near 500
#: agents (it opens a PUSH socket and its monitor per peer); the open-files limit (each
#: peer costs about three descriptors) is then what bounds it
MAX_SOCKETS = 65535


def context(private: bool = False) -> zmq.Context:
    """The process's ZeroMQ context (or, `private`, a new one: a CurveZMQ transport's ZAP
    handler serves its own context only), allowed MAX_SOCKETS sockets (libzmq takes the
    limit when the context's first socket is made, so every socket comes from here), with
    the open-files limit raised to the hard limit."""
    ctx = zmq.Context() if private else zmq.Context.instance()
    if ctx.get(zmq.MAX_SOCKETS) < MAX_SOCKETS:
        ctx.set(zmq.MAX_SOCKETS, MAX_SOCKETS)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and hard != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return ctx


PeerCallback = Callable[[str, PeerEvent], None]


@dataclass
class TransportCounters:
    sent: int = 0
    dropped: int = 0
    #: CurveZMQ: handshakes on our server socket that failed without reaching the gate
    #: (e.g. a peer without CurveZMQ), and frames not sent for want of a server key
    curve_failed: int = 0
    no_server_key: int = 0


#: the handshake failures a CURVE server or client socket's monitor reports
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


#: unique inproc endpoint names (wake-up sockets, socket monitors): pyzmq's default
#: monitor name uses the socket's file descriptor, which is reused after a close while the
#: old endpoint may still be bound, and then the new monitor silently never reports
_INPROC_NAMES = itertools.count()


class Transport:
    """Receives frames on `address` and sends frames to peers' addresses."""

    def __init__(self, host: str, port: int, dispatcher: Dispatcher,
                 on_peer: PeerCallback | None = None, batch: bool = False, advertise: str | None = None,
                 curve: CurveLinks | None = None) -> None:
        """Listen on host:port (any free port when 0); peers are told to send to
        `advertise` (an address they can reach, when `host` is e.g. 0.0.0.0) at that
        port, else to `host`. OSError naming the address when it cannot listen."""
        self._curve = curve
        #: the ZAP gate of a CurveZMQ transport (None: plaintext)
        self.gate: CurveGate | None = None
        self._ctx = context(private=curve is not None)
        if curve is not None:
            from corral.security.zap import CurveGate

            self.gate = CurveGate(self._ctx, curve.admits).start()
        #: batching on: envelopes waiting for `flush`, per peer (in send order)
        self._queued: dict[str, list[bytes]] | None = {} if batch else None
        self._dispatcher = dispatcher
        self._pull = self._ctx.socket(zmq.PULL)
        self._pull.setsockopt(zmq.RCVHWM, 0)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
        self._pull_monitor: zmq.Socket | None = None
        if curve is not None:
            self._pull.setsockopt(zmq.CURVE_SERVER, 1)
            self._pull.setsockopt(zmq.CURVE_SECRETKEY, curve.own.secret)
            self._pull.setsockopt(zmq.CURVE_PUBLICKEY, curve.own.public)
            self._pull_monitor = self._pull.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                addr=f"inproc://corral-monitor-{next(_INPROC_NAMES)}")
        try:
            if port:
                self._pull.bind(f"tcp://{host}:{port}")
            else:
                port = self._pull.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as exc:
            self._pull.close()
            raise OSError(exc.errno, f"cannot listen on tcp://{host}:{port}: {exc.strerror}") from None
        self.address = f"tcp://{advertise or host}:{port}"
        self._sender = self.address.encode()
        self._pushes: dict[str, zmq.Socket] = {}
        #: CurveZMQ: the server key each PUSH socket was made with, and the addresses
        #: frames were dropped towards for want of one
        self._server_keys: dict[str, bytes] = {}
        self._keyless: set[str] = set()
        self._monitors: dict[zmq.Socket, str] = {}
        self._on_peer = on_peer
        self._seq = 0
        self.counters = TransportCounters()
        # a name of its own: id(self) is reused once a transport is collected, while the
        # closed one's inproc endpoint may still be bound
        wake_name = f"inproc://corral-wake-{next(_INPROC_NAMES)}"
        self._wake_rx = self._ctx.socket(zmq.PULL)
        self._wake_rx.bind(wake_name)
        self._wake_tx = self._ctx.socket(zmq.PUSH)
        self._wake_tx.connect(wake_name)
        self._wake_lock = threading.Lock()
        self._poller = zmq.Poller()
        self._poller.register(self._pull, zmq.POLLIN)
        self._poller.register(self._wake_rx, zmq.POLLIN)
        if self._pull_monitor is not None:
            self._poller.register(self._pull_monitor, zmq.POLLIN)
        self._closed = False

    def _push_to(self, to: str) -> zmq.Socket:
        sock = self._pushes.get(to)
        if sock is None:
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, SEND_HWM)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
            curve = self._curve
            if curve is not None:
                server_key = curve.server_key(to)
                if server_key is None:
                    sock.close(linger=0)
                    raise NoServerKey(f"no CurveZMQ public key is known for the peer at {to!r}")
                sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.own.public)
                sock.setsockopt(zmq.CURVE_SECRETKEY, curve.own.secret)
                self._server_keys[to] = server_key
            monitor = None
            if self._on_peer is not None or curve is not None:
                events = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED
                if curve is not None:
                    events |= _HANDSHAKE_FAILED
                monitor = sock.get_monitor_socket(events, addr=f"inproc://corral-monitor-{next(_INPROC_NAMES)}")
                self._monitors[monitor] = to
                self._poller.register(monitor, zmq.POLLIN)
            try:
                sock.connect(to)
            except zmq.ZMQError:  # e.g. an address that does not parse: nothing to keep
                if monitor is not None:
                    self._poller.unregister(monitor)
                    del self._monitors[monitor]
                    monitor.close(linger=0)
                self._close_push(sock, 0)
                raise
            self._pushes[to] = sock
        return sock

    def send(self, to: str, msg_type: int, body: bytes) -> bool:
        """Queue one frame for `to`; False (and counted) when it had to be dropped."""
        if self._queued is not None:
            return self._enqueue(to, msg_type, body)
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        sock = self._pushes.get(to)
        if sock is None or self._closed:
            # first frame towards `to` (or closed): encode first, so bad arguments raise
            # before a socket is made, then take send_frame's path
            return self.send_frame(to, encode(msg_type, seq, self._sender, body))
        try:
            # envelope written straight into a libzmq message (compiled core)
            if _encode_and_send(sock, msg_type, seq, self._sender, body):
                self.counters.sent += 1
                return True
            error = None  # EAGAIN: the peer's queue is full
        except zmq.ZMQError as exc:
            error = exc
        return self._dropped(to, 1, error)

    def send_frame(self, to: str, frame: bytes, envelopes: int = 1) -> bool:
        """Send an encoded frame that carries `envelopes` envelopes (counted together)."""
        if self._closed:
            return self._dropped(to, envelopes, None)
        try:
            sock = self._pushes.get(to)
            if sock is None:
                sock = self._push_to(to)
            if _send_frame(sock, frame):
                self.counters.sent += envelopes
                return True
            error = None
        except zmq.ZMQError as exc:  # e.g. an address that does not parse
            error = exc
        except NoServerKey as exc:
            self.counters.no_server_key += envelopes
            error = None if to in self._keyless else exc  # (said once per address)
            self._keyless.add(to)
        return self._dropped(to, envelopes, error)

    def _dropped(self, to: str, envelopes: int, error: Exception | None) -> bool:
        """Count `envelopes` as dropped (full queue or closed transport, or `error`); False."""
        self.counters.dropped += envelopes
        if error is not None:
            log.warning("cannot send to %r: %s", to, error)
        return False

    @property
    def batching(self) -> bool:
        return self._queued is not None

    def _enqueue(self, to: str, msg_type: int, body: bytes) -> bool:
        if self._closed:
            return self._dropped(to, 1, None)
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        frame = encode(msg_type, seq, self._sender, body)  # bad arguments raise here
        queue = self._queued.get(to)  # type: ignore[union-attr]
        if queue is None:
            self._queued[to] = [frame]  # type: ignore[index]
        else:
            queue.append(frame)
        return True

    def flush(self) -> int:
        """Batching on: send every queued envelope, one frame per peer (or a few, each
        at most BATCH_MAX_BYTES); the number of frames sent. A no-op without batching."""
        if not self._queued:
            return 0
        queued, self._queued = self._queued, {}
        frames = 0
        for to, envelopes in queued.items():
            chunk: list[bytes] = []
            size = 0
            for envelope in envelopes:
                if chunk and size + len(envelope) + 4 > BATCH_MAX_BYTES:
                    frames += 1
                    self._send_batch(to, chunk)
                    chunk, size = [], 0
                chunk.append(envelope)
                size += len(envelope) + 4
            frames += 1
            self._send_batch(to, chunk)
        return frames

    def _send_batch(self, to: str, envelopes: list[bytes]) -> None:
        """One envelope goes as itself, several as one BATCH frame."""
        frame = envelopes[0] if len(envelopes) == 1 else encode_batch(envelopes)
        self.send_frame(to, frame, len(envelopes))

    def forget_peer(self, to: str) -> None:
        """Close the socket towards `to`, dropping what is still queued for it."""
        if self._queued:
            self._queued.pop(to, None)
        sock = self._pushes.pop(to, None)
        self._server_keys.pop(to, None)
        if sock is not None:
            self._close_push(sock, 0)
            self._close_monitor_of(to)

    def _close_push(self, sock: zmq.Socket, linger: int) -> None:
        """Stop monitoring `sock` (libzmq's end of the monitor goes with it), then close it."""
        if self._on_peer is not None or self._curve is not None:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
        sock.close(linger=linger)

    def _close_monitor_of(self, to: str) -> None:
        for monitor, peer in list(self._monitors.items()):
            if peer == to:
                self._poller.unregister(monitor)
                del self._monitors[monitor]
                monitor.close(linger=0)

    def _read_monitors(self, events: dict) -> None:
        for monitor, peer in list(self._monitors.items()):
            if monitor not in events:
                continue
            while True:
                try:
                    event = recv_monitor_message(monitor, zmq.NOBLOCK)
                except zmq.Again:
                    break
                kind = event["event"]
                if kind & _HANDSHAKE_FAILED:
                    if self._handshake_failed(peer):
                        break  # the socket and its monitor are gone
                elif self._on_peer is None:
                    continue
                elif kind == zmq.EVENT_CONNECTED:
                    self._on_peer(peer, PeerEvent.CONNECTED)
                elif kind == zmq.EVENT_DISCONNECTED:
                    self._on_peer(peer, PeerEvent.DISCONNECTED)

    def _handshake_failed(self, peer: str) -> bool:
        """The CurveZMQ handshake with `peer` failed (the peer refused our key, or its
        server key is not the one we used): when the address's server key changed
        (another principal registered there), the socket is made again with the new
        one at the next send (True); else ZeroMQ keeps retrying."""
        used = self._server_keys.get(peer)
        try:
            current = self._curve.server_key(peer)  # type: ignore[union-attr]
        except Exception:
            log.exception("looking up the CurveZMQ key of %s failed", peer)
            current = used
        if current == used:
            log.warning("CurveZMQ handshake with %s failed (it does not admit our key, or its key is not %s)",
                        peer, (used or b"?").decode("ascii", "replace"))
            return False
        log.info("the CurveZMQ key of %s changed: connecting again", peer)
        self.forget_peer(peer)
        return True

    def _read_pull_monitor(self) -> None:
        while True:
            try:
                recv_monitor_message(self._pull_monitor, zmq.NOBLOCK)  # type: ignore[arg-type]
            except zmq.Again:
                return
            self.counters.curve_failed += 1
            log.warning("refused a connection to %s: its handshake failed (no CurveZMQ, or not our server key)",
                        self.address)

    def wait(self, timeout: float | None) -> bool:
        """Block up to `timeout` seconds for frames or a wake-up; True if frames are waiting."""
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        events = dict(self._poller.poll(ms))
        if self._monitors:
            self._read_monitors(events)
        if self._pull_monitor is not None and self._pull_monitor in events:
            self._read_pull_monitor()
        if self._wake_rx in events:
            while True:
                try:
                    self._wake_rx.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
        return self._pull in events

    def drain(self) -> int:
        """Dispatch the frames waiting, up to about DRAIN_BATCH envelopes; the number of
        frames read."""
        return self._dispatcher.drain(self._pull, DRAIN_BATCH)

    def wake(self) -> None:
        """Thread-safe: make a blocked `poll` return."""
        with self._wake_lock:
            if not self._closed:
                try:
                    self._wake_tx.send(b"", zmq.NOBLOCK)
                except zmq.Again:
                    pass

    def close(self) -> None:
        self.flush()
        with self._wake_lock:
            self._closed = True
        for sock in self._pushes.values():
            self._close_push(sock, CLOSE_LINGER_MS)  # flush what is queued (the context is never terminated)
        self._pushes.clear()
        for monitor in self._monitors:
            monitor.close(linger=0)
        self._monitors.clear()
        if self._pull_monitor is not None:
            try:
                self._pull.disable_monitor()
            except zmq.ZMQError:
                pass
            self._pull_monitor.close(linger=0)
        for sock in (self._pull, self._wake_rx, self._wake_tx):
            sock.close(linger=0)
        if self.gate is not None:
            self.gate.stop()
            # the context is the transport's own: ended once the PUSH sockets' linger is
            # over (in the background: close does not wait for it)
            threading.Thread(target=self._ctx.term, name="corral-zmq-term", daemon=True).start()

    @property
    def curve_refused(self) -> int:
        """Handshakes the ZAP gate refused (unknown keys); 0 without CurveZMQ."""
        return self.gate.refusals if self.gate is not None else 0
