"""The node process: one `Node` engine on ZeroMQ, its storage on the data directory.

One thread runs the loop: wait for frames or the engine's next timer; hand every frame
that is waiting (up to a batch) to the engine; run due timers; commit the storage
(one write and one fdatasync for all the iteration's mutations: group commit); only
then send what the engine produced, one frame per destination.

Sockets: a ROUTER bound on the node's address takes frames from clients (answered on
the same connection) and from other nodes; the node reaches each peer through its own
DEALER connected to the peer's ROUTER. Peer sockets are `IMMEDIATE` with no linger: a
frame for a peer that is not connected is dropped at once (the coordinator's timeouts
and hints cover it), never queued for a node that may be gone.

SIGTERM (or SIGINT) stops the node cleanly: it tells its peers it is shutting down
(they stop sending it writes and hint them), answers new client requests NOT_READY (the
client retries on another node), lets the requests it coordinates finish, commits and
exits 0. SIGKILL loses nothing that was acknowledged.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import Any

import zmq

from corral.examples.cassandra.messages import decode_frame, encode_frame
from corral.examples.cassandra.node import Node, NodeConfig
from corral.examples.cassandra.storage import Storage, SyncMode

log = logging.getLogger(__name__)

#: frames handled per loop iteration before a commit and the sends
BATCH = 512


def zmq_endpoint(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"tcp://{socket.gethostbyname(host)}:{port}"


def dealer(context: zmq.Context, address: str, *, immediate: bool, send_hwm: int) -> zmq.Socket:
    """A DEALER connected to the node at `address` (reconnecting within a second).
    `immediate`: a frame sent while it is not connected fails (zmq.Again) instead of
    waiting for the connection."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, int(immediate))
    sock.setsockopt(zmq.SNDHWM, send_hwm)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
    sock.connect(zmq_endpoint(address))
    return sock


class NodeServer:
    def __init__(self, config: NodeConfig, data_dir: str, sync: SyncMode = SyncMode.BATCH) -> None:
        self.config = config
        self.storage = Storage(data_dir, sync=sync)
        self.node = Node(config, self.storage, time.time())
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.SNDHWM, 0)
        self.router.setsockopt(zmq.RCVHWM, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.bind(zmq_endpoint(config.address))
        self.peers: dict[str, zmq.Socket] = {}
        self.stopping = threading.Event()
        self.frames_in = 0
        self.malformed_frames = 0

    def _peer(self, address: str) -> zmq.Socket:
        sock = self.peers.get(address)
        if sock is None:
            try:
                sock = dealer(self.context, address, immediate=True, send_hwm=100_000)
            except (OSError, zmq.ZMQError) as exc:
                log.warning("cannot connect to %s: %s", address, exc)
                sock = self.context.socket(zmq.DEALER)  # unconnected: every send fails, as for a dead peer
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.IMMEDIATE, 1)
            self.peers[address] = sock
        return sock

    def _send(self, outbox: dict[Any, list[Any]]) -> None:
        own = self.config.address
        for destination, messages in outbox.items():
            try:
                if isinstance(destination, bytes):
                    self.router.send_multipart([destination, encode_frame(None, messages)], zmq.NOBLOCK)
                else:
                    self._peer(destination).send(encode_frame(own, messages), zmq.NOBLOCK)
            except zmq.Again:
                pass  # not connected: at most once, as documented
            except zmq.ZMQError as exc:
                log.debug("send to %r failed: %s", destination, exc)

    def run(self) -> int:
        node, router, storage = self.node, self.router, self.storage
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        self._send(node.take_outbox())
        drain_deadline = None
        while True:
            if self.stopping.is_set():
                if drain_deadline is None:
                    node.shutdown()
                    drain_deadline = time.time() + self.config.write_timeout + self.config.read_timeout
                elif node.drained() or time.time() > drain_deadline:
                    break
            wait = node.next_deadline() - time.time()
            timeout_ms = max(0, min(int(wait * 1000) + 1, 200))
            if poller.poll(timeout_ms):
                now = time.time()
                for _ in range(BATCH):
                    try:
                        identity, frame = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    except ValueError:
                        self.malformed_frames += 1
                        continue
                    self.frames_in += 1
                    try:
                        sender, messages = decode_frame(frame)
                    except ValueError as exc:
                        self.malformed_frames += 1
                        log.warning("dropped a frame: %s", exc)
                        continue
                    node.receive(sender if sender is not None else identity, messages, now)
            node.tick(time.time())
            storage.commit()
            self._send(node.take_outbox())
            if node.fatal:
                log.error("stopping: %s", node.fatal)
                self.close()
                return 2
        storage.commit()
        self._send(node.take_outbox())
        self.close()
        return 0

    def close(self) -> None:
        for sock in self.peers.values():
            sock.close(linger=200)  # the last frames (shutdown notices) may take this long to leave
        self.router.close(linger=0)
        self.context.term()
        self.storage.close()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
