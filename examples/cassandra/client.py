"""The store's Python client: token-aware, pipelined, retrying on another coordinator.

    client = Client(["127.0.0.1:31000"])
    client.put(b"k", b"v", consistency="QUORUM")
    client.get(b"k")          # b"v", or None
    client.delete(b"k")
    client.put_many([(b"a", b"1"), (b"b", b"2")])   # pipelined: many requests in flight

The client learns the ring (nodes, states, tokens) from the first contact point that
answers and sends each request to a live replica of its key, rotating among them; a
request that gets no answer in time, or whose coordinator is not serving, times out
or is unavailable, is sent again to the next candidate (the other replicas, then any
other node), up to `attempts` coordinators, pausing between rounds once every candidate
has been tried. Writes carry a client timestamp, so a
retried write is the same write: retries are idempotent.

With `token_aware=False` requests go to the contact points only (to test one
coordinator, or to pin a client to nearby nodes). A Client is not thread-safe: use one
per thread.
"""
from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Iterable, Sequence

import zmq

from corral.examples.cassandra.messages import ErrorKind, Verb, decode_frame, encode_frame
from corral.examples.cassandra.ring import Consistency, TokenRing, token_of
from corral.examples.cassandra.server import dealer

log = logging.getLogger(__name__)


class StoreError(Exception):
    """A request failed; subclasses say why."""


class Unavailable(StoreError):
    """Too few replicas were up for the consistency level."""


class RequestTimeout(StoreError):
    """Replicas, or every coordinator tried, did not answer in time."""


class InvalidRequest(StoreError):
    """The request was malformed or not allowed."""


class NotReady(StoreError):
    """The coordinator is not serving (joining, leaving)."""


class NoHostAvailable(StoreError):
    """No contact point answered."""


_ERRORS: dict[str, type[StoreError]] = {
    ErrorKind.UNAVAILABLE.value: Unavailable, ErrorKind.TIMEOUT.value: RequestTimeout,
    ErrorKind.INVALID.value: InvalidRequest, ErrorKind.NOT_READY.value: NotReady,
}
_RETRIED = (Unavailable, RequestTimeout, NotReady)


def parse_address(text: str) -> str:
    """`HOST:PORT`, checked; ValueError naming the bad value."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid node address {text!r}: expected HOST:PORT")
    return f"{host}:{int(port)}"


def _as_bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


class _Op:
    __slots__ = ("verb", "key", "fields", "token", "tried", "deadline", "rid", "coordinator", "outcome", "error",
                 "started", "finished")

    def __init__(self, verb: Verb, key: bytes | None, fields: tuple[Any, ...]) -> None:
        self.verb, self.key, self.fields = verb, key, fields
        self.token = token_of(key) if key is not None else None
        self.tried: list[str] = []
        self.deadline = 0.0
        self.rid = 0
        self.coordinator = ""
        self.outcome: Any = None
        self.error: StoreError | None = None
        self.started = 0.0
        self.finished = 0.0


class Client:
    """See the module docstring. `contact_points`: "HOST:PORT" strings (or one string,
    comma-separated)."""

    def __init__(self, contact_points: Sequence[str] | str, *, consistency: str = "QUORUM",
                 request_timeout: float = 4.0, attempts: int = 3, connect_timeout: float = 3.0,
                 refresh_interval: float = 10.0, token_aware: bool = True) -> None:
        if isinstance(contact_points, str):
            contact_points = [p for p in contact_points.split(",") if p.strip()]
        self.contact_points = [parse_address(p) for p in contact_points]
        if not self.contact_points:
            raise ValueError("no contact points given")
        self.consistency = Consistency.parse(consistency).value
        self.request_timeout = request_timeout
        self.attempts = attempts
        self.connect_timeout = connect_timeout
        self.refresh_interval = refresh_interval
        #: False: send every request to the contact points only (in turn), never elsewhere
        self.token_aware = token_aware
        self._context = zmq.Context()
        self._sockets: dict[str, zmq.Socket] = {}
        self._poller = zmq.Poller()
        self._rids = itertools.count(1)
        self._in_flight: dict[int, _Op] = {}
        #: address -> requests to send it, gathered per loop iteration into one frame
        self._outgoing: dict[str, list[Any]] = {}
        self._last_ts = 0
        self._turn = 0
        self.ring_info: dict[str, Any] = {}
        self._ring = TokenRing.build({}, 1)
        self._up: list[str] = []
        self._addresses: dict[str, str] = {}
        self._refreshed = 0.0
        self.refresh_ring()

    # -- public API -------------------------------------------------------------------------
    def put(self, key: bytes | str, value: bytes | str, consistency: str | None = None,
            timestamp: int | None = None) -> None:
        self._one(self._write_op(key, value, consistency, timestamp))

    def delete(self, key: bytes | str, consistency: str | None = None, timestamp: int | None = None) -> None:
        self._one(self._write_op(key, None, consistency, timestamp))

    def get(self, key: bytes | str, consistency: str | None = None) -> bytes | None:
        return self._one(self._read_op(key, consistency))

    def put_many(self, items: Iterable[tuple[bytes | str, bytes | str]], consistency: str | None = None,
                 window: int = 256, latencies: list[float] | None = None) -> list[StoreError | None]:
        """Write every (key, value), keeping up to `window` requests in flight; returns
        one entry per item: None, or the error that item ended with. `latencies`, when
        given, gets each request's seconds from its first send to its answer."""
        ops = [self._write_op(k, v, consistency, None) for k, v in items]
        self._run(ops, window)
        if latencies is not None:
            latencies.extend(op.finished - op.started for op in ops)
        return [op.error for op in ops]

    def get_many(self, keys: Iterable[bytes | str], consistency: str | None = None,
                 window: int = 256, latencies: list[float] | None = None) -> list[bytes | None | StoreError]:
        """Read every key, pipelined; one entry per key: the value (or None), or an error."""
        ops = [self._read_op(k, consistency) for k in keys]
        self._run(ops, window)
        if latencies is not None:
            latencies.extend(op.finished - op.started for op in ops)
        return [op.error if op.error is not None else op.outcome for op in ops]

    def ring(self) -> dict[str, Any]:
        """The ring as a node sees it: cluster, replication, and per node its name,
        address, state (UN, DN, UJ, UL), load, ownership and tokens."""
        self.refresh_ring()
        return self.ring_info

    def repair(self, node: str, timeout: float = 600.0) -> dict[str, Any]:
        """Run anti-entropy repair on `node` (name or address); its statistics."""
        return self._on_node(node, Verb.REPAIR, timeout)

    def decommission(self, node: str) -> None:
        """Ask `node` (name or address) to stream its data away and leave the ring."""
        self._on_node(node, Verb.DECOMMISSION, self.request_timeout)

    def node_names(self) -> list[str]:
        """The names of the nodes in the ring, as last learnt."""
        return [n["name"] for n in self.ring_info.get("nodes", [])]

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._context.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ops ----------------------------------------------------------------------------------
    def _level(self, consistency: str | None) -> str:
        return self.consistency if consistency is None else Consistency.parse(consistency).value

    def _timestamp(self) -> int:
        ts = time.time_ns() // 1000
        if ts <= self._last_ts:
            ts = self._last_ts + 1
        self._last_ts = ts
        return ts

    def _write_op(self, key: bytes | str, value: bytes | str | None, consistency: str | None,
                  timestamp: int | None) -> _Op:
        k = _as_bytes(key, "key")
        if not k:
            raise ValueError("key must not be empty")
        ts = self._timestamp() if timestamp is None else int(timestamp)
        level = self._level(consistency)
        if value is None:
            return _Op(Verb.DELETE, k, (k, level, ts))
        return _Op(Verb.PUT, k, (k, _as_bytes(value, "value"), level, ts))

    def _read_op(self, key: bytes | str, consistency: str | None) -> _Op:
        k = _as_bytes(key, "key")
        if not k:
            raise ValueError("key must not be empty")
        return _Op(Verb.GET, k, (k, self._level(consistency)))

    def _one(self, op: _Op) -> Any:
        self._run([op], 1)
        if op.error is not None:
            raise op.error
        return op.outcome

    def ring_view(self, node: str, timeout: float | None = None) -> dict[str, Any]:
        """The ring as one node (name or address) sees it, asked of that node alone."""
        return self._on_node(node, Verb.RING, timeout or self.connect_timeout, refresh=False)

    def _on_node(self, node: str, verb: Verb, timeout: float, refresh: bool = True) -> Any:
        if refresh:
            self.refresh_ring()
        address = self._addresses.get(node, node)
        op = _Op(verb, None, ())
        op.tried = []
        saved, self.request_timeout = self.request_timeout, timeout
        try:
            self._run([op], 1, only=parse_address(address))
        finally:
            self.request_timeout = saved
        if op.error is not None:
            raise op.error
        return op.outcome

    # -- routing ------------------------------------------------------------------------------
    def _candidates(self, op: _Op) -> list[str]:
        if not self.token_aware:
            self._turn += 1
            shift = self._turn % len(self.contact_points)
            return self.contact_points[shift:] + self.contact_points[:shift]
        if op.token is None:
            return list(self._up) or list(self.contact_points)
        replicas = [self._addresses[h] for h in self._ring.replicas(op.token) if h in self._addresses]
        up = [a for a in replicas if a in self._up]
        if up:
            self._turn += 1
            shift = self._turn % len(up)
            up = up[shift:] + up[:shift]
        others = [a for a in self._up if a not in up]
        if up or others:
            return up + others
        return replicas or list(self.contact_points)  # nothing is known to be up: try what there is

    def _socket(self, address: str) -> zmq.Socket:
        sock = self._sockets.get(address)
        if sock is None:
            try:
                sock = dealer(self._context, address, immediate=False, send_hwm=0)
            except OSError as exc:  # a host name that does not resolve
                raise NoHostAvailable(f"cannot reach {address}: {exc}") from None
            self._sockets[address] = sock
            self._poller.register(sock, zmq.POLLIN)
        return sock

    def refresh_ring(self) -> None:
        """Ask the nodes (known up ones, then the contact points) for the ring, preferring
        the view of a node that serves (one that just started may not know the ring
        yet); NoHostAvailable when none answers."""
        candidates = list(dict.fromkeys([*self._up, *self.contact_points]))
        fallback = None
        last_error: StoreError | None = None
        saved, self.request_timeout = self.request_timeout, self.connect_timeout
        try:
            for address in candidates:
                op = _Op(Verb.RING, None, ())
                try:
                    self._run([op], 1, only=address)
                except NoHostAvailable as exc:
                    last_error = exc
                    continue
                if op.error is not None:
                    last_error = op.error
                    continue
                if op.outcome.get("mode") in ("NORMAL", "LEAVING"):
                    self._apply_ring(op.outcome)
                    return
                fallback = fallback or op.outcome
        finally:
            self.request_timeout = saved
        if fallback is None:
            raise NoHostAvailable(f"no node answered among {', '.join(candidates)}: {last_error}")
        self._apply_ring(fallback)

    def _apply_ring(self, info: dict[str, Any]) -> None:
        self.ring_info = info
        nodes = info["nodes"]
        self._addresses = {n["host_id"]: n["address"] for n in nodes}
        self._addresses.update({n["name"]: n["address"] for n in nodes})
        owners = {n["host_id"]: n["tokens"] for n in nodes if n["status"] in ("NORMAL", "LEAVING")}
        self._ring = TokenRing.build(owners, info["replication"])
        self._up = [n["address"] for n in nodes if n["state"].startswith("U") and n["status"] != "LEFT"]
        self._refreshed = time.monotonic()

    # -- the loop -------------------------------------------------------------------------------
    def _send(self, op: _Op, now: float, order: list[str] | None) -> bool:
        """Send `op` to its next coordinator; False when it has none left."""
        candidates = order if order is not None else self._candidates(op)
        for address in candidates:
            if address not in op.tried:
                break
        else:
            if not candidates:
                return False
            address = candidates[len(op.tried) % len(candidates)]
        op.tried.append(address)
        if not op.started:
            op.started = now
        op.coordinator = address
        op.rid = next(self._rids)
        op.deadline = now + self.request_timeout
        self._in_flight[op.rid] = op
        self._outgoing.setdefault(address, []).append((op.verb, op.rid, *op.fields))
        return True

    def _retry_later(self, op: _Op, retry: list[_Op], delayed: list[tuple[float, _Op]],
                     order: list[str] | None) -> None:
        """Retry at once on a coordinator not tried yet; once every one has been tried,
        after a pause that doubles (50 ms to 1 s), giving the ring time to settle."""
        candidates = order if order is not None else self._candidates(op)
        log.debug("retrying %s %r after attempt %d (%s)", op.verb.name, op.key, len(op.tried), op.error)
        rounds = len(op.tried) // max(1, len(set(candidates)))
        if rounds == 0:
            retry.append(op)
        else:
            delayed.append((time.monotonic() + min(0.05 * 2 ** (rounds - 1), 1.0), op))

    def _run(self, ops: list[_Op], window: int, order: list[str] | None = None, only: str | None = None,
             attempts: int | None = None) -> None:
        if order is None and only is None and time.monotonic() - self._refreshed > self.refresh_interval:
            self.refresh_ring()
        if only is not None:
            order = [only]
        attempts = attempts or (1 if only is not None else self.attempts)
        queue = iter(ops)
        active = 0
        self._outgoing.clear()
        exhausted = False
        retry: list[_Op] = []
        delayed: list[tuple[float, _Op]] = []
        stale = False
        while True:
            now = time.monotonic()
            if delayed:
                due = [op for at, op in delayed if at <= now]
                delayed = [(at, op) for at, op in delayed if at > now]
                retry.extend(due)
            for op in retry:
                if len(op.tried) >= attempts or not self._send(op, now, order):
                    active -= 1
                else:
                    op.error = None
            retry.clear()
            while not exhausted and active < window:
                op = next(queue, None)
                if op is None:
                    exhausted = True
                    break
                active += 1
                if not self._send(op, now, order):
                    op.error = NoHostAvailable("no node to send the request to")
                    active -= 1
            for address, messages in self._outgoing.items():
                self._socket(address).send(encode_frame(None, messages))
            self._outgoing.clear()
            if active == 0:
                break
            wakeups = [op.deadline for op in self._in_flight.values()] + [at for at, _ in delayed]
            wait = min(wakeups) - time.monotonic() if wakeups else 0
            events = dict(self._poller.poll(max(0, int(wait * 1000) + 1)))
            for sock in events:
                while True:
                    try:
                        frame = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        _sender, messages = decode_frame(frame)
                    except ValueError:
                        continue
                    for message in messages:
                        if message[0] != Verb.RESULT:
                            continue
                        op = self._in_flight.pop(message[1], None)
                        if op is None:
                            continue  # a late answer to an attempt already given up on
                        error = message[2]
                        op.finished = time.monotonic()
                        if error is None:
                            op.outcome, op.error = message[3], None
                            active -= 1
                            continue
                        kind, text = error
                        op.error = _ERRORS.get(kind, StoreError)(f"{op.coordinator}: {text}")
                        if isinstance(op.error, _RETRIED):
                            stale = True
                            self._retry_later(op, retry, delayed, order)
                        else:
                            active -= 1
            now = time.monotonic()
            for rid, op in list(self._in_flight.items()):
                if op.deadline <= now:
                    del self._in_flight[rid]
                    op.error = RequestTimeout(f"{op.coordinator}: no answer within {self.request_timeout:g}s")
                    stale = True
                    self._retry_later(op, retry, delayed, order)
        if stale and order is None:
            self._refreshed = 0.0  # learn the ring again before the next request
