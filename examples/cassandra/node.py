"""A store node, sans I/O: coordinator, replica, gossip member, and its joining,
replacing, leaving and repairing procedures.

The node takes decoded messages and the time (`receive`, `tick`) and leaves what it
sends in `outbox` (destination -> messages); a destination is a node address (str) or
a client connection (bytes). The process around it (`corral.examples.cassandra.server`)
or the simulator performs the sends, and commits the storage before it does, so
nothing acknowledges a write that is not durable.

Coordinating: any serving node coordinates. A write goes to every replica of its key,
natural and pending (a range moving to a joining node, or away from a leaving one, is
written to both sides); it succeeds once `block_for(consistency)` replicas plus the
pending ones have acknowledged; replicas that are down get a hint stored on the
coordinator, and so do those that did not answer in time. A read asks the first
replica (the coordinator itself when it is one) for the data and as many others as the
level needs for a digest; on a mismatch it reads the data from all of them, answers
with the newest cell and first writes that cell back to the replicas that lacked it
(blocking read repair). Fewer live replicas than the level needs: Unavailable at once.

Hints are replayed to their replica when it is up again (to whoever took its place if
it was replaced, or to the key's current replicas if it left the ring). A hint older
than `gc_grace` is dropped instead (as Cassandra's hints live gc_grace_seconds): the
tombstones that would shadow what it carries may be gone by then.

Tombstones are kept `gc_grace` seconds after this node stored them (Cassandra's
gc_grace_seconds, default 10 days), long enough for hints, read repair and an operator's
repair to bring the delete to every replica; a compaction pass every
`compaction_interval` then drops older ones, a batch per timer so that it never holds up
requests. A replica that missed a delete and comes back after its tombstones were
dropped would bring the deleted value back: as in Cassandra, repair every node within
gc_grace, and replace, do not restart, a node down longer than that.
"""
from __future__ import annotations

import enum
import heapq
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from corral.examples.cassandra.cells import Cell, cell_digest, reconcile
from corral.examples.cassandra.flows import TIMED_OUT, Ask, Flow, FlowError, Gather, Sleep
from corral.examples.cassandra.gossip import AppState, Gossiper, Status
from corral.examples.cassandra.messages import ErrorKind, Verb
from corral.examples.cassandra.ring import (
    Consistency,
    PendingIndex,
    Range,
    TokenRing,
    pending_replicas,
    random_tokens,
    range_movements,
    split_range,
    token_of,
)
from corral.examples.cassandra.storage import Storage

log = logging.getLogger(__name__)

Destination = str | bytes  # a node's address, or a client connection's identity
#: what a client may send; every other verb is accepted from nodes only
CLIENT_VERBS = frozenset({Verb.PUT, Verb.GET, Verb.DELETE, Verb.RING, Verb.REPAIR, Verb.DECOMMISSION})
HINTS_PER_ROUND = 500


@dataclass
class NodeConfig:
    name: str
    address: str
    seeds: list[str]
    cluster: str = "corral"
    replication: int = 3
    num_tokens: int = 16
    gossip_interval: float = 1.0
    phi_threshold: float = 8.0
    #: longest wait for the ring to learn of a status change (Cassandra: 30 s)
    ring_delay: float = 5.0
    write_timeout: float = 2.0
    read_timeout: float = 5.0
    #: timeout of one step of streaming, repair and the like
    request_timeout: float = 10.0
    hinted_handoff: bool = True
    max_hint_window: float = 3 * 3600.0
    #: address (or name) of the dead node whose tokens this node takes on its first start
    replace: str | None = None
    stream_chunk_bytes: int = 1 << 20
    repair_segments: int = 16
    load_interval: float = 5.0
    #: seconds a tombstone is kept after this node stored it (Cassandra: 864000, 10 days)
    gc_grace: float = 864000.0
    #: seconds between compaction passes, which drop the tombstones past gc_grace
    compaction_interval: float = 60.0
    #: stored cells one compaction step looks at before it lets the node serve again
    compaction_batch: int = 5000

    def validate(self) -> None:
        if self.replication < 1:
            raise ValueError(f"replication factor {self.replication} must be at least 1")
        if not 1 <= self.num_tokens <= 256:
            raise ValueError(f"num_tokens {self.num_tokens} must be between 1 and 256")
        for name in ("gossip_interval", "ring_delay", "write_timeout", "read_timeout", "request_timeout",
                     "gc_grace", "compaction_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} {getattr(self, name)!r} must be positive")


def _hint_id(now: float, nonce: int) -> bytes:
    """A hint's id: when it was written (whole seconds, so a target's hints are stored
    oldest first) and 32 random bits."""
    return (int(now) << 32 | nonce).to_bytes(8, "big")


def _hint_written_at(hint_id: bytes) -> int:
    return int.from_bytes(hint_id[:4], "big")


class Mode(enum.Enum):
    STARTING = "STARTING"            # learning the ring
    JOINING = "JOINING"              # announced, streaming its ranges in
    NORMAL = "NORMAL"
    LEAVING = "LEAVING"              # streaming its ranges away
    DECOMMISSIONED = "DECOMMISSIONED"  # left the ring; serves nothing


class NodeError(RuntimeError):
    """The node cannot start or go on; the message says why."""


_LEVELS = {level.value: level for level in Consistency}


def _level(text: Any) -> Consistency:
    level = _LEVELS.get(text)
    return level if level is not None else Consistency.parse(str(text))


class _Waiter:
    """Something waiting for REPLY messages with one request id."""

    def reply(self, host: str | None, payload: Any, now: float) -> None:
        raise NotImplementedError

    def expire(self, now: float) -> None:
        raise NotImplementedError


class _WriteRequest(_Waiter):
    __slots__ = ("node", "client", "client_rid", "key", "cell", "needed", "acks", "waiting", "responded", "rid")

    def __init__(self, node: "Node", client: Destination | None, client_rid: Any, key: bytes, cell: Cell,
                 needed: int) -> None:
        self.node, self.client, self.client_rid = node, client, client_rid
        self.key, self.cell, self.needed = key, cell, needed
        self.acks = 0
        self.waiting: set[str] = set()
        self.responded = False
        self.rid = 0

    def reply(self, host: str | None, payload: Any, now: float) -> None:
        if host not in self.waiting:
            return
        self.waiting.discard(host)
        self.acks += 1
        if not self.responded and self.acks >= self.needed:
            self.respond()
        if not self.waiting:
            self.node.waiting.pop(self.rid, None)

    def respond(self) -> None:
        self.responded = True
        if self.client is not None:
            self.node.result(self.client, self.client_rid, None, None)

    def expire(self, now: float) -> None:
        for host in self.waiting:
            self.node.hint(host, self.key, self.cell, now)
        if not self.responded:
            self.node.counters["write_timeouts"] += 1
            self.node.error(self.client, self.client_rid, ErrorKind.TIMEOUT,
                            f"{self.acks} of {self.needed} replicas acknowledged the write in time")


class _ReadRequest(_Waiter):
    __slots__ = ("node", "client", "client_rid", "key", "contacted", "needed", "cells", "digests", "phase",
                 "rid", "resolved", "repairing")

    def __init__(self, node: "Node", client: Destination, client_rid: Any, key: bytes, contacted: list[str]) -> None:
        self.node, self.client, self.client_rid, self.key = node, client, client_rid, key
        self.contacted = contacted
        self.cells: dict[str, Cell | None] = {}
        self.digests: dict[str, bytes] = {}
        self.phase = "digest"
        self.rid = 0
        self.resolved: Cell | None = None
        self.repairing: set[str] = set()

    def reply(self, host: str | None, payload: Any, now: float) -> None:
        if host is None or host not in self.contacted:
            return
        if self.phase == "digest":
            if host == self.contacted[0]:
                self.cells[host] = tuple(payload) if payload is not None else None  # type: ignore[assignment]
            else:
                self.digests[host] = payload
            if len(self.cells) + len(self.digests) == len(self.contacted):
                self._compare(now)
        elif self.phase == "data":
            if host not in self.cells:
                self.cells[host] = tuple(payload) if payload is not None else None  # type: ignore[assignment]
                if len(self.cells) == len(self.contacted):
                    self._resolve(now)
        elif self.phase == "repair":
            self.repairing.discard(host)
            if not self.repairing:
                self._finish()

    def _compare(self, now: float) -> None:
        data = self.cells[self.contacted[0]]
        expected = cell_digest(data)
        if all(d == expected for d in self.digests.values()):
            self._finish(data)
            return
        self.node.counters["digest_mismatches"] += 1
        self.phase = "data"
        for host in self.digests:
            self.node.send_to_host(host, (Verb.READ, self.rid, self.key, False))

    def _resolve(self, now: float) -> None:
        resolved: Cell | None = None
        for cell in self.cells.values():
            resolved = reconcile(resolved, cell)
        self.resolved = resolved
        assert resolved is not None  # digests differed, so some replica has a cell
        stale = [h for h, c in self.cells.items() if c != resolved]
        self.phase = "repair"
        for host in stale:
            self.node.counters["read_repairs"] += 1
            if host == self.node.host_id:
                self.node.storage.apply(self.key, resolved)
            else:
                self.repairing.add(host)
                self.node.send_to_host(host, (Verb.MUTATE, self.rid, self.key, resolved[0], resolved[1]))
        if not self.repairing:
            self._finish()

    def _finish(self, data: Cell | None = None) -> None:
        cell = data if self.phase == "digest" else self.resolved
        self.node.waiting.pop(self.rid, None)
        self.node.result(self.client, self.client_rid, None, cell[1] if cell is not None else None)

    def expire(self, now: float) -> None:
        self.node.counters["read_timeouts"] += 1
        answered = len(self.cells) + len(self.digests)
        self.node.error(self.client, self.client_rid, ErrorKind.TIMEOUT,
                        f"read timed out in its {self.phase} phase ({answered} of {len(self.contacted)} replicas answered)")


class _FlowWaiter(_Waiter):
    __slots__ = ("node", "flow", "results", "index", "state", "single")

    def __init__(self, node: "Node", flow: "_RunningFlow", results: list[Any], index: int, single: bool) -> None:
        self.node, self.flow, self.results, self.index, self.single = node, flow, results, index, single

    def reply(self, host: str | None, payload: Any, now: float) -> None:
        self._done(payload)

    def expire(self, now: float) -> None:
        self._done(TIMED_OUT)

    def _done(self, outcome: Any) -> None:
        self.results[self.index] = outcome
        self.flow.outstanding -= 1
        if self.flow.outstanding == 0:
            self.node._advance(self.flow, self.results[0] if self.single else list(self.results))


@dataclass
class _RunningFlow:
    name: str
    gen: Flow
    on_done: Callable[[Any, BaseException | None], None]
    outstanding: int = 0


@dataclass(order=True)
class _Timer:
    deadline: float
    seq: int
    action: Callable[[float], None] = field(compare=False)


class Node:
    """One store node (see the module docstring)."""

    def __init__(self, config: NodeConfig, storage: Storage, now: float, rng: random.Random | None = None) -> None:
        config.validate()
        self.config = config
        self.storage = storage
        self.rng = rng or random.Random()
        self.replication = config.replication
        system = storage.load_system()
        if system.get("decommissioned"):
            raise NodeError(f"node {config.name} was decommissioned; its data directory {storage.directory} "
                            "cannot rejoin the ring (start it on a new one)")
        self.host_id: str = system.get("host_id") or str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        generation = max(int(now), system.get("generation", 0) + 1)
        self.system = dict(system, host_id=self.host_id, generation=generation)
        storage.save_system(self.system)
        self.outbox: dict[Destination, list[Any]] = {}
        self.waiting: dict[int, _Waiter] = {}
        self.counters: dict[str, int] = dict.fromkeys(
            ("writes", "reads", "unavailable", "write_timeouts", "read_timeouts", "hints_written", "hints_delivered",
             "digest_mismatches", "read_repairs", "repaired_cells", "streamed_cells", "streamed_bytes", "malformed",
             "compactions", "tombstones_purged", "hints_expired"), 0)
        self.fatal: str | None = None
        self.draining = False
        #: the time of the message or timer being handled
        self.now = now
        self._rid = 0
        self._timers: list[_Timer] = []
        self._timer_seq = 0
        self._last_timestamp = 0
        self._hints_in_flight: set[tuple[str, bytes]] = set()
        self._hint_targets: set[str] = storage.hint_targets()
        self._down_since: dict[str, float] = {}
        #: replaced host -> the host that took its tokens
        self.replaced: dict[str, str] = dict(system.get("replaced", {}))
        #: what other nodes have told us they know of our state: host -> version
        self._seen_by: dict[str, int] = {}
        self._flows: list[_RunningFlow] = []
        self.ring = TokenRing.build({}, self.replication)
        self.future = self.ring
        self.pending = PendingIndex([])
        self._address_host: dict[str, str] = {}
        self.gossip = Gossiper(self.host_id, generation, config.cluster, config.seeds, config.gossip_interval,
                               config.phi_threshold, self.rng, self._gossip_send, self._state_changed,
                               self._liveness_changed)
        for host in system.get("removed", []):
            self.gossip.removed.add(host)
        self.gossip.set_local({AppState.ADDRESS: config.address, AppState.NAME: config.name,
                               AppState.LOAD: storage.load_bytes()})
        self._handlers: dict[int, Callable[[Destination, tuple[Any, ...], float], None]] = {
            Verb.PUT: self._on_put, Verb.GET: self._on_get, Verb.DELETE: self._on_delete, Verb.RING: self._on_ring,
            Verb.REPAIR: self._on_repair, Verb.DECOMMISSION: self._on_decommission,
            Verb.MUTATE: self._on_mutate, Verb.READ: self._on_read, Verb.REPLY: self._on_reply,
            Verb.GOSSIP_SYN: self._on_syn, Verb.GOSSIP_ACK: self._on_ack, Verb.GOSSIP_ACK2: self._on_ack2,
            Verb.SHUTDOWN: self._on_shutdown, Verb.RANGE_DIGESTS: self._on_range_digests,
            Verb.STREAM_PULL: self._on_stream_pull, Verb.PUSH: self._on_push,
        }
        self._every(config.gossip_interval, self._gossip_round, now)
        self._every(config.gossip_interval, self._deliver_hints, now)
        self._every(config.load_interval, self._publish_load, now)
        self._compacting = False
        self._every(config.compaction_interval, self._compact, now)
        if system.get("bootstrapped"):
            # in the ring at once (its replicas get writes), serving clients once it has
            # heard from the peers it knew, so that it coordinates with the whole ring
            self.mode = Mode.STARTING
            self.gossip.set_local({AppState.TOKENS: list(system["tokens"]), AppState.STATUS: (Status.NORMAL.value, None)})
            self.start_flow("settle", self._settle(len(system.get("peers", []))), self._settled_done, now)
        else:
            self.mode = Mode.STARTING
            self.start_flow("join", self._join(), self._join_done, now)
        self._gossip_round(now)

    # -- the I/O boundary ------------------------------------------------------------------
    def send(self, dest: Destination, message: tuple[Any, ...]) -> None:
        box = self.outbox.get(dest)
        if box is None:
            self.outbox[dest] = [message]
        else:
            box.append(message)

    def send_to_host(self, host: str, message: tuple[Any, ...]) -> None:
        address = self.gossip.address_of(host)
        if address is not None:
            self.send(address, message)

    def take_outbox(self) -> dict[Destination, list[Any]]:
        out, self.outbox = self.outbox, {}
        return out

    def receive(self, sender: Destination, messages: Iterable[Any], now: float) -> None:
        """Handle the messages of one frame from `sender`."""
        self.now = now
        handlers = self._handlers
        from_client = isinstance(sender, bytes)
        for message in messages:
            try:
                handler = handlers[message[0]]
            except (KeyError, IndexError, TypeError):
                self._malformed(sender, message, "unknown verb")
                continue
            if from_client and message[0] not in CLIENT_VERBS:
                self._malformed(sender, message, "a verb only nodes send")
                continue
            try:
                handler(sender, message, now)
            except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
                self._malformed(sender, message, f"{type(exc).__name__}: {exc}")

    def _malformed(self, sender: Destination, message: Any, why: str) -> None:
        self.counters["malformed"] += 1
        log.warning("malformed message from %r (%s): %.200r", sender, why, message)
        if isinstance(sender, bytes) and isinstance(message, tuple) and len(message) > 1:
            self.error(sender, message[1], ErrorKind.INVALID, f"malformed request: {why}")

    def next_deadline(self) -> float:
        return self._timers[0].deadline if self._timers else float("inf")

    def tick(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0].deadline <= now:
            timer = heapq.heappop(timers)
            self.now = max(now, timer.deadline)
            timer.action(self.now)
        self.now = now

    def _at(self, deadline: float, action: Callable[[float], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, _Timer(deadline, self._timer_seq, action))

    def _every(self, interval: float, action: Callable[[float], None], now: float) -> None:
        def run(at: float) -> None:
            action(at)
            self._at(at + interval, run)
        self._at(now + interval, run)

    def _register(self, waiter: _Waiter, timeout: float, now: float) -> int:
        self._rid += 1
        rid = self._rid
        self.waiting[rid] = waiter

        def expire(at: float) -> None:
            pending = self.waiting.pop(rid, None)
            if pending is not None:
                pending.expire(at)
        self._at(now + timeout, expire)
        return rid

    def result(self, client: Destination, rid: Any, error: tuple[str, str] | None, payload: Any) -> None:
        self.send(client, (Verb.RESULT, rid, error, payload))

    def error(self, client: Destination | None, rid: Any, kind: ErrorKind, message: str) -> None:
        if client is not None:
            self.send(client, (Verb.RESULT, rid, (kind.value, message), None))

    def timestamp(self, now: float) -> int:
        ts = int(now * 1_000_000)
        if ts <= self._last_timestamp:
            ts = self._last_timestamp + 1
        self._last_timestamp = ts
        return ts

    # -- client requests ---------------------------------------------------------------
    def _serving(self, client: Destination, rid: Any) -> bool:
        if (self.mode is Mode.NORMAL or self.mode is Mode.LEAVING) and not self.draining:
            return True
        if self.draining:
            self.error(client, rid, ErrorKind.NOT_READY, f"node {self.config.name} is shutting down")
            return False
        self.error(client, rid, ErrorKind.NOT_READY, f"node {self.config.name} is {self.mode.value}, not serving")
        return False

    def _on_put(self, client: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, key, value, consistency, ts = msg
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        self._write(client, rid, key, value, consistency, ts, now)

    def _on_delete(self, client: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, key, consistency, ts = msg
        self._write(client, rid, key, None, consistency, ts, now)

    def _write(self, client: Destination, rid: Any, key: Any, value: bytes | None, consistency: str,
               ts: int | None, now: float) -> None:
        if not isinstance(key, bytes) or not key:
            raise TypeError("key must be non-empty bytes")
        level = _level(consistency)
        if ts is None:
            ts = self.timestamp(now)
        elif not isinstance(ts, int) or isinstance(ts, bool):
            raise TypeError(f"timestamp must be an integer, not {ts!r}")
        if not self._serving(client, rid):
            return
        self.counters["writes"] += 1
        self.coordinate_write(client, rid, key, (ts, value), level, now)

    def coordinate_write(self, client: Destination | None, rid: Any, key: bytes, cell: Cell, level: Consistency,
                         now: float) -> None:
        token = token_of(key)
        targets = self.ring.replicas(token)
        pending = self.pending.lookup(token) if self.pending else ()
        if pending:
            targets = targets + tuple(h for h in pending if h not in targets)
        needed = level.block_for(self.replication) + len(pending)
        me = self.host_id
        endpoints = self.gossip.endpoints
        live = [h for h in targets if h == me or (h in endpoints and endpoints[h].alive)]
        if len(live) < needed:
            self.counters["unavailable"] += 1
            self.error(client, rid, ErrorKind.UNAVAILABLE,
                       f"{level.value} needs {needed} live replicas of {len(targets)}; {len(live)} are up")
            return
        request = _WriteRequest(self, client, rid, key, cell, needed)
        remote = []
        for host in targets:
            if host == me:
                self.storage.apply(key, cell)
                request.acks += 1
            elif host in live:
                remote.append(host)
            else:
                self.hint(host, key, cell, now)
        if remote:
            request.waiting.update(remote)
            request.rid = self._register(request, self.config.write_timeout, now)
            message = (Verb.MUTATE, request.rid, key, cell[0], cell[1])
            for host in remote:
                self.send_to_host(host, message)
        if request.acks >= needed:
            request.respond()

    def _on_get(self, client: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, key, consistency = msg
        if not isinstance(key, bytes) or not key:
            raise TypeError("key must be non-empty bytes")
        level = _level(consistency)
        if not self._serving(client, rid):
            return
        self.counters["reads"] += 1
        replicas = self.ring.replicas(token_of(key))
        needed = level.block_for(self.replication)
        me = self.host_id
        endpoints = self.gossip.endpoints
        live = [h for h in replicas if h != me and h in endpoints and endpoints[h].alive]
        if me in replicas:
            live.insert(0, me)
        if len(live) < needed:
            self.counters["unavailable"] += 1
            self.error(client, rid, ErrorKind.UNAVAILABLE,
                       f"{level.value} needs {needed} live replicas of {len(replicas)}; {len(live)} are up")
            return
        contacted = live[:needed]
        if len(contacted) == 1 and contacted[0] == me:
            cell = self.storage.get(key)
            self.result(client, rid, None, cell[1] if cell is not None else None)
            return
        request = _ReadRequest(self, client, rid, key, contacted)
        request.rid = self._register(request, self.config.read_timeout, now)
        for i, host in enumerate(contacted):
            if host != me:
                self.send_to_host(host, (Verb.READ, request.rid, key, i > 0))
        if contacted[0] == me:
            request.reply(me, self.storage.get(key), now)

    def _on_ring(self, client: Destination, msg: tuple[Any, ...], now: float) -> None:
        self.result(client, msg[1], None, self.describe_ring())

    def describe_ring(self) -> dict[str, Any]:
        """What `nodetool status` shows, plus the tokens clients route by."""
        nodes = []
        for host, state in sorted(self.gossip.endpoints.items(), key=lambda e: str(e[1].get(AppState.NAME))):
            status = state.status
            if status is None or status is Status.LEFT:
                continue
            up = host == self.host_id or state.alive
            nodes.append({
                "host_id": host, "name": state.get(AppState.NAME), "address": state.get(AppState.ADDRESS),
                "state": ("U" if up else "D") + status.letter, "status": status.value,
                "load": state.get(AppState.LOAD, 0), "owns": round(self.ring.ownership(host), 4),
                "tokens": list(state.get(AppState.TOKENS) or []),
            })
        return {"cluster": self.config.cluster, "replication": self.replication, "coordinator": self.config.name,
                "mode": self.mode.value, "nodes": nodes}

    def _on_repair(self, client: Destination, msg: tuple[Any, ...], now: float) -> None:
        rid = msg[1]
        if self.mode is not Mode.NORMAL:
            self.error(client, rid, ErrorKind.NOT_READY, f"node {self.config.name} is {self.mode.value}; repair needs NORMAL")
            return

        def done(stats: Any, failure: BaseException | None) -> None:
            if failure is not None:
                self.error(client, rid, ErrorKind.TIMEOUT, f"repair failed: {failure}")
            else:
                self.result(client, rid, None, stats)
        self.start_flow("repair", self._repair(), done, now)

    def _on_decommission(self, client: Destination, msg: tuple[Any, ...], now: float) -> None:
        rid = msg[1]
        if self.mode is not Mode.NORMAL:
            self.error(client, rid, ErrorKind.NOT_READY, f"node {self.config.name} is {self.mode.value}; "
                                                         "only a NORMAL node can decommission")
            return
        owners = {h for h in self.ring.owners} - {self.host_id}
        if len(owners) < self.replication:
            self.error(client, rid, ErrorKind.INVALID,
                       f"cannot decommission {self.config.name}: {len(owners)} nodes would be left for "
                       f"replication factor {self.replication}")
            return

        def done(_result: Any, failure: BaseException | None) -> None:
            if failure is not None:
                log.error("decommission failed: %s", failure)
                self.mode = Mode.NORMAL
                self.gossip.set_local({AppState.STATUS: (Status.NORMAL.value, None)})
        self.start_flow("decommission", self._decommission(), done, now)
        self.result(client, rid, None, "decommissioning")

    # -- replica side --------------------------------------------------------------------
    def _on_mutate(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, key, ts, value = msg
        self.storage.apply(key, (ts, value))
        self.send(sender, (Verb.REPLY, rid, None))

    def _on_read(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, key, digest_only = msg
        cell = self.storage.get(key)
        self.send(sender, (Verb.REPLY, rid, cell_digest(cell) if digest_only else cell))

    def _on_reply(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, payload = msg
        waiter = self.waiting.get(rid)
        if waiter is not None and isinstance(sender, str):
            waiter.reply(self._address_host.get(sender), payload, now)

    def _on_range_digests(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, ranges = msg
        self.send(sender, (Verb.REPLY, rid, self.storage.digests([tuple(r) for r in ranges])))

    def _on_stream_pull(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, rng, after, max_bytes = msg
        cells, position = self.storage.scan(tuple(rng), after, max_bytes=max_bytes)
        self.send(sender, (Verb.REPLY, rid, ([(k, c[0], c[1]) for k, c in cells], position)))

    def _on_push(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        _, rid, cells = msg
        self.counters["repaired_cells"] += self.storage.ingest((k, (ts, v)) for k, ts, v in cells)
        self.send(sender, (Verb.REPLY, rid, None))

    # -- gossip ---------------------------------------------------------------------------
    def _gossip_send(self, address: str, message: tuple[Any, ...]) -> None:
        self.send(address, message)

    def _gossip_round(self, now: float) -> None:
        if self.mode is not Mode.DECOMMISSIONED:
            self.gossip.round(now)

    def _on_syn(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        if not isinstance(sender, str):
            return
        _, cluster, digests = msg
        for host, generation, version in digests:
            if host == self.host_id and generation == self.gossip.local.generation:
                peer = self._address_host.get(sender)
                if peer is not None:
                    self._seen_by[peer] = max(version, self._seen_by.get(peer, 0))
        self.gossip.on_syn(sender, cluster, digests, now)

    def _on_ack(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        if isinstance(sender, str):
            self.gossip.on_ack(sender, msg[1], msg[2], now)

    def _on_ack2(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        self.gossip.apply(msg[1], now)

    def _on_shutdown(self, sender: Destination, msg: tuple[Any, ...], now: float) -> None:
        self.gossip.on_shutdown(msg[1], msg[2], now)

    def shutdown(self) -> None:
        """A clean stop begins: tell every live peer (they stop sending this node writes
        and hint them instead), and answer new client requests NOT_READY (clients retry
        elsewhere) while the requests under way finish (see `drained`)."""
        self.draining = True
        message = (Verb.SHUTDOWN, self.host_id, self.gossip.local.generation)
        for host, state in self.gossip.endpoints.items():
            if host != self.host_id and state.alive:
                self.send_to_host(host, message)

    def drained(self) -> bool:
        """No client request this node coordinates is still waiting for replicas."""
        for waiter in self.waiting.values():
            if isinstance(waiter, _ReadRequest) or (isinstance(waiter, _WriteRequest) and not waiter.responded
                                                    and waiter.client is not None):
                return False
        return True

    def _state_changed(self, host: str, keys: set[str]) -> None:
        state = self.gossip.endpoints.get(host)
        if state is not None and AppState.ADDRESS.value in keys:
            self._address_host[state.get(AppState.ADDRESS)] = host
        if keys & {AppState.STATUS.value, AppState.TOKENS.value}:
            self._rebuild_ring()

    def _liveness_changed(self, host: str, alive: bool) -> None:
        if alive:
            self._down_since.pop(host, None)
        else:
            self._down_since.setdefault(host, self.now)
        log.info("%s is now %s", self._describe(host), "UP" if alive else "DOWN")

    def _describe(self, host: str) -> str:
        state = self.gossip.endpoints.get(host)
        return f"{state.get(AppState.NAME)} ({state.get(AppState.ADDRESS)})" if state else host

    def _rebuild_ring(self) -> None:
        current: dict[str, list[int]] = {}
        joining: dict[str, list[int]] = {}
        leaving: set[str] = set()
        for host, state in list(self.gossip.endpoints.items()):
            status, tokens = state.status, state.get(AppState.TOKENS)
            if status is None or not tokens:
                continue
            if status is Status.NORMAL:
                replaced = state.status_detail
                if replaced and replaced in self.gossip.endpoints and replaced != host:
                    self._forget_replaced(replaced, host)
                current[host] = tokens
            elif status is Status.LEAVING:
                current[host] = tokens
                leaving.add(host)
            elif status in (Status.BOOT, Status.BOOT_REPLACE):
                joining[host] = tokens
        future = {h: t for h, t in current.items() if h not in leaving}
        future.update(joining)  # a replacing node's tokens win over the dead node's
        peers = sorted(h for h in current if h != self.host_id)
        if peers != self.system.get("peers"):
            self.system["peers"] = peers
            self.storage.save_system(self.system)
        self.ring = TokenRing.build(current, self.replication)
        self.future = TokenRing.build(future, self.replication)
        moving = bool(joining or leaving)
        self.pending = PendingIndex(pending_replicas(self.ring, self.future) if moving else [])

    def _forget_replaced(self, old: str, new: str) -> None:
        log.info("%s was replaced by %s", self._describe(old), self._describe(new))
        self.gossip.remove(old)
        self.replaced[old] = new
        self.system["replaced"] = dict(self.replaced)
        self.system["removed"] = sorted(self.gossip.removed)
        self.storage.save_system(self.system)

    def _publish_load(self, now: float) -> None:
        self.gossip.set_local({AppState.LOAD: self.storage.load_bytes()})

    # -- compaction -----------------------------------------------------------------------
    def _compact(self, now: float) -> None:
        if not self._compacting:
            self._compacting = True
            self.start_flow("compaction", self._compaction(now - self.config.gc_grace), self._compacted, now)

    def _compaction(self, deleted_before: float) -> Flow:
        """One pass over the stored cells, dropping tombstones deleted before
        `deleted_before`, a batch at a time with the node serving in between."""
        self.storage.flush()  # tombstones in the memtable reach LMDB, with their deletion time
        after = None
        while True:
            purged, after = self.storage.purge_tombstones(deleted_before, after, self.config.compaction_batch)
            self.counters["tombstones_purged"] += purged
            if after is None:
                return
            yield Sleep(0.001)  # the next batch after the messages and timers due now

    def _compacted(self, _result: Any, failure: BaseException | None) -> None:
        self._compacting = False
        self.counters["compactions"] += 1

    # -- hints ----------------------------------------------------------------------------
    def hint(self, host: str, key: bytes, cell: Cell, now: float) -> None:
        if not self.config.hinted_handoff:
            return
        down = self._down_since.get(host)
        if down is not None and now - down > self.config.max_hint_window:
            return
        hint_id = _hint_id(now, self.rng.getrandbits(32))
        self.storage.add_hint(host, hint_id, key, cell)
        self._hint_targets.add(host)
        self.counters["hints_written"] += 1

    def _deliver_hints(self, now: float) -> None:
        for target in list(self._hint_targets):
            hints = self.storage.hints_for(target, HINTS_PER_ROUND + len(self._hints_in_flight))
            if not hints:
                self._hint_targets.discard(target)
                continue
            destination = target
            while destination in self.replaced:
                destination = self.replaced[destination]
            state = self.gossip.endpoints.get(destination)
            if state is not None and state.status is not Status.LEFT:
                if not state.alive:
                    continue
                recipients = [destination]
            else:
                recipients = None  # left the ring: the key's current replicas get it
            sent = 0
            expired_before = now - self.config.gc_grace
            for hint_id, key, cell in hints:
                if (target, hint_id) in self._hints_in_flight:
                    continue
                if _hint_written_at(hint_id) < expired_before:
                    self.storage.hint_done(target, hint_id)
                    self.counters["hints_expired"] += 1
                    continue
                if sent >= HINTS_PER_ROUND:
                    break
                sent += 1
                hosts = recipients or [h for h in self.ring.replicas(token_of(key)) if self.gossip.is_alive(h)
                                       or h == self.host_id]
                self._hints_in_flight.add((target, hint_id))
                self._send_hint(target, hint_id, key, cell, hosts, now)

    def _send_hint(self, target: str, hint_id: bytes, key: bytes, cell: Cell, hosts: list[str], now: float) -> None:
        node = self

        class HintWaiter(_Waiter):
            def __init__(self) -> None:
                self.waiting = {h for h in hosts if h != node.host_id}

            def reply(self, host: str | None, payload: Any, now: float) -> None:
                self.waiting.discard(host)  # type: ignore[arg-type]
                if not self.waiting:
                    node.waiting.pop(rid, None)
                    node._hints_in_flight.discard((target, hint_id))
                    node.storage.hint_done(target, hint_id)
                    node.counters["hints_delivered"] += 1

            def expire(self, now: float) -> None:
                node._hints_in_flight.discard((target, hint_id))

        waiter = HintWaiter()
        if self.host_id in hosts:
            self.storage.apply(key, cell)
        rid = self._register(waiter, self.config.write_timeout, now)
        if not waiter.waiting:
            waiter.reply(None, None, now)
            return
        for host in waiter.waiting:
            self.send_to_host(host, (Verb.MUTATE, rid, key, cell[0], cell[1]))

    # -- flows ----------------------------------------------------------------------------
    def start_flow(self, name: str, gen: Flow, on_done: Callable[[Any, BaseException | None], None],
                   now: float) -> None:
        flow = _RunningFlow(name, gen, on_done)
        self._flows.append(flow)
        self.now = now
        self._advance(flow, None)

    def _advance(self, flow: _RunningFlow, value: Any) -> None:
        now = self.now
        try:
            wait = flow.gen.send(value)
        except StopIteration as stop:
            self._flows.remove(flow)
            flow.on_done(stop.value, None)
            return
        except Exception as exc:
            if not isinstance(exc, (FlowError, NodeError)):
                log.exception("%s failed", flow.name)
            self._flows.remove(flow)
            flow.on_done(None, exc)
            return
        if isinstance(wait, Sleep):
            self._at(now + wait.seconds, lambda at: self._resume_at(flow, at))
            return
        asks = [wait] if isinstance(wait, Ask) else list(wait.asks)
        if not asks:
            self._at(now, lambda at: self._resume_at(flow, at, []))
            return
        results: list[Any] = [None] * len(asks)
        flow.outstanding = len(asks)
        for i, ask in enumerate(asks):
            rid = self._register(_FlowWaiter(self, flow, results, i, isinstance(wait, Ask)), ask.timeout, now)
            self.send(ask.address, (ask.verb, rid, *ask.args))

    def _resume_at(self, flow: _RunningFlow, now: float, value: Any = None) -> None:
        self.now = now
        self._advance(flow, value)

    def _settled(self, version: int, hosts: Iterable[str]) -> bool:
        """Whether every live host in `hosts` has shown, in its gossip, that it knows our
        state up to `version`."""
        return all(self._seen_by.get(h, 0) >= version for h in hosts if self.gossip.is_alive(h))

    def _await_ring(self, version: int) -> Flow:
        """Wait (at most ring_delay) until every live node knows our state at `version`."""
        waited = 0.0
        step = self.config.gossip_interval / 2
        others = [h for h in self.gossip.endpoints if h != self.host_id]
        while waited < self.config.ring_delay and not self._settled(version, others):
            yield Sleep(step)
            waited += step

    # joining, replacing
    def _join(self) -> Flow:
        waited, step = 0.0, self.config.gossip_interval / 2
        # learn the ring: until every known node is heard alive, at most ring_delay
        while waited < self.config.ring_delay:
            yield Sleep(step)
            waited += step
            others = [s for h, s in self.gossip.endpoints.items() if h != self.host_id and s.status is not None
                      and s.status is not Status.LEFT]
            if others and all(s.alive for s in others):
                break
        if self.config.replace:
            return (yield from self._replace(self.config.replace))
        normal = [h for h, s in self.gossip.endpoints.items()
                  if h != self.host_id and s.status in (Status.NORMAL, Status.LEAVING)]
        taken = [t for s in self.gossip.endpoints.values() for t in (s.get(AppState.TOKENS) or [])]
        tokens = random_tokens(self.config.num_tokens, self.rng, taken)
        self.system["tokens"] = tokens
        self.storage.save_system(self.system)
        if not normal:
            log.info("no ring found: %s starts a new one", self.config.name)
            return tokens
        self.mode = Mode.JOINING
        self.gossip.set_local({AppState.TOKENS: tokens, AppState.STATUS: (Status.BOOT.value, None)})
        yield from self._await_ring(self.gossip.local.max_version)
        yield from self._stream_in(self.ring, self.future)
        return tokens

    def _replace(self, target: str) -> Flow:
        matches = [(h, s) for h, s in self.gossip.endpoints.items()
                   if h != self.host_id and target in (s.get(AppState.ADDRESS), s.get(AppState.NAME), h)
                   and s.status in (Status.NORMAL, Status.LEAVING)]
        if not matches:
            raise NodeError(f"cannot replace {target!r}: no such node in the ring")
        dead, state = max(matches, key=lambda m: m[1].generation)
        if state.alive:
            raise NodeError(f"cannot replace {target!r}: it is alive ({state.get(AppState.ADDRESS)})")
        tokens = list(state.get(AppState.TOKENS))
        self.system.update(tokens=tokens, replacing=dead)
        self.storage.save_system(self.system)
        self.mode = Mode.JOINING
        self.gossip.set_local({AppState.TOKENS: tokens, AppState.STATUS: (Status.BOOT_REPLACE.value, dead)})
        yield from self._await_ring(self.gossip.local.max_version)
        yield from self._stream_in(self.ring, self.future, exclude={dead})
        return tokens

    def _settle(self, peers: int) -> Flow:
        """Wait (at most ring_delay) until `peers` other ring members are known and up."""
        waited, step = 0.0, self.config.gossip_interval / 2
        while waited < self.config.ring_delay:
            members = [s for h, s in self.gossip.endpoints.items() if h != self.host_id
                       and s.status in (Status.NORMAL, Status.LEAVING)]
            if len(members) >= peers and all(s.alive for s in members):
                break
            yield Sleep(step)
            waited += step

    def _settled_done(self, _result: Any, failure: BaseException | None) -> None:
        self.mode = Mode.NORMAL
        log.info("%s is NORMAL (restarted with its tokens)", self.config.name)

    def _join_done(self, tokens: Any, failure: BaseException | None) -> None:
        if failure is not None:
            if isinstance(failure, NodeError):
                self.fatal = str(failure)
                log.error("%s", failure)
                return
            log.warning("joining failed (%s); trying again", failure)
            self.start_flow("join", self._join(), self._join_done, self.now)
            return
        replaced = self.system.pop("replacing", None)
        self.system.update(tokens=tokens, bootstrapped=True)
        if replaced:
            self._forget_replaced(replaced, self.host_id)
        self.storage.save_system(self.system)
        self.mode = Mode.NORMAL
        self.gossip.set_local({AppState.TOKENS: tokens, AppState.STATUS: (Status.NORMAL.value, replaced)})
        log.info("%s is NORMAL with %d tokens", self.config.name, len(tokens))

    def _stream_in(self, before: TokenRing, after: TokenRing, exclude: set[str] = frozenset()) -> Flow:  # type: ignore[assignment]
        """Pull every range this node gains between the two rings: from the replica that
        loses it when it is up (the consistent choice), otherwise from every live one."""
        me = self.host_id
        started, cells_before, bytes_before = self.now, self.counters["streamed_cells"], self.counters["streamed_bytes"]
        yield from self._stream_ranges(before, after, exclude)
        cells = self.counters["streamed_cells"] - cells_before
        megabytes = (self.counters["streamed_bytes"] - bytes_before) / 1e6
        elapsed = max(self.now - started, 1e-9)
        log.info("streamed %d cells (%.1f MB) in %.2f s (%.1f MB/s)", cells, megabytes, elapsed, megabytes / elapsed)

    def _stream_ranges(self, before: TokenRing, after: TokenRing, exclude: set[str]) -> Flow:
        me = self.host_id
        for rng, old, new in range_movements(before, after):
            if me not in new or me in old:
                continue
            losing = [h for h in old if h not in new and h not in exclude]
            sources = [h for h in losing if self.gossip.is_alive(h)][:1]
            if not sources:
                sources = [h for h in old if h not in exclude and self.gossip.is_alive(h)]
            if not sources and old:
                raise FlowError(f"no live replica to stream range {rng} from")
            for source in sources:
                yield from self._pull(source, rng)

    def _pull(self, source: str, rng: Range) -> Flow:
        after = None
        address = self.gossip.address_of(source)
        if address is None:
            raise FlowError(f"no address for {source}")
        failures = 0
        while True:
            reply = yield Ask(address, Verb.STREAM_PULL, (rng, after, self.config.stream_chunk_bytes),
                              self.config.request_timeout)
            if reply is TIMED_OUT:
                failures += 1
                if failures >= 3:
                    raise FlowError(f"{self._describe(source)} did not answer streaming requests for {rng}")
                continue
            cells, after = reply
            self.counters["streamed_cells"] += len(cells)
            self.counters["streamed_bytes"] += sum(len(k) + len(v or b"") + 9 for k, _ts, v in cells)
            self.storage.ingest((k, (ts, v)) for k, ts, v in cells)
            if after is None:
                return

    # leaving
    def _decommission(self) -> Flow:
        self.mode = Mode.LEAVING
        self.gossip.set_local({AppState.STATUS: (Status.LEAVING.value, None)})
        yield from self._await_ring(self.gossip.local.max_version)
        for rng, old, new in range_movements(self.ring, self.future):
            if self.host_id not in old:
                continue
            for host in new:
                if host not in old:
                    yield from self._push_range(host, rng)
        yield from self._hand_off_hints()
        self.system["decommissioned"] = True
        self.storage.save_system(self.system)
        self.gossip.set_local({AppState.STATUS: (Status.LEFT.value, None)})
        yield from self._await_ring(self.gossip.local.max_version)
        self.mode = Mode.DECOMMISSIONED
        log.info("%s has left the ring", self.config.name)

    def _push_range(self, host: str, rng: Range) -> Flow:
        address = self.gossip.address_of(host)
        if address is None:
            raise FlowError(f"no address for {host}")
        after = None
        while True:
            cells, after = self.storage.scan(rng, after, max_bytes=self.config.stream_chunk_bytes)
            if cells:
                yield from self._push(address, [(k, c[0], c[1]) for k, c in cells])
                self.counters["streamed_cells"] += len(cells)
            if after is None:
                return

    def _push(self, address: str, cells: list[tuple[bytes, int, bytes | None]]) -> Flow:
        for _attempt in range(3):
            reply = yield Ask(address, Verb.PUSH, (cells,), self.config.request_timeout)
            if reply is not TIMED_OUT:
                return
        raise FlowError(f"{address} did not accept pushed data")

    def _hand_off_hints(self) -> Flow:
        """A leaving node's undelivered hints go to their keys' future replicas."""
        for target in list(self._hint_targets):
            while True:
                hints = self.storage.hints_for(target, HINTS_PER_ROUND)
                if not hints:
                    break
                by_host: dict[str, list[tuple[bytes, int, bytes | None]]] = {}
                for _hint_id, key, cell in hints:
                    for host in self.future.replicas(token_of(key)):
                        if host != self.host_id:
                            by_host.setdefault(host, []).append((key, cell[0], cell[1]))
                for host, cells in by_host.items():
                    address = self.gossip.address_of(host)
                    if address is not None and self.gossip.is_alive(host):
                        yield from self._push(address, cells)
                for hint_id, _key, _cell in hints:
                    self.storage.hint_done(target, hint_id)
        self._hint_targets.clear()

    # repairing
    def _repair(self) -> Flow:
        """Anti-entropy over every range this node replicates: compare range digests
        (each range cut into `repair_segments` pieces) with the other replicas, and for
        each piece that differs, merge everyone's cells and push back what each lacks."""
        stats = {"ranges": 0, "segments": 0, "mismatched_segments": 0, "cells_sent": 0, "skipped_replicas": 0}
        for rng, replicas in self.ring.vnode_ranges():
            if self.host_id not in replicas:
                continue
            stats["ranges"] += 1
            others = [h for h in replicas if h != self.host_id]
            live = [h for h in others if self.gossip.is_alive(h)]
            stats["skipped_replicas"] += len(others) - len(live)
            if not live:
                continue
            segments = split_range(rng, self.config.repair_segments)
            stats["segments"] += len(segments)
            mine = self.storage.digests(segments)
            replies = yield Gather([Ask(self.gossip.address_of(h), Verb.RANGE_DIGESTS, (segments,),  # type: ignore[arg-type]
                                        self.config.request_timeout) for h in live])
            answered = [(h, r) for h, r in zip(live, replies) if r is not TIMED_OUT]
            if len(answered) < len(live):
                raise FlowError(f"{len(live) - len(answered)} replica(s) did not send digests for {rng}")
            for i, segment in enumerate(segments):
                if all(r[i] == mine[i] for _, r in answered):
                    continue
                stats["mismatched_segments"] += 1
                stats["cells_sent"] += yield from self._repair_segment(segment, [h for h, _ in answered])
        return stats

    def _repair_segment(self, segment: Range, hosts: list[str]) -> Flow:
        views: dict[str, dict[bytes, Cell]] = {self.host_id: {}}
        after = None
        while True:
            cells, after = self.storage.scan(segment, after, max_bytes=self.config.stream_chunk_bytes)
            views[self.host_id].update(cells)
            if after is None:
                break
        for host in hosts:
            views[host] = {}
            after = None
            while True:
                reply = yield Ask(self.gossip.address_of(host), Verb.STREAM_PULL,  # type: ignore[arg-type]
                                  (segment, after, self.config.stream_chunk_bytes), self.config.request_timeout)
                if reply is TIMED_OUT:
                    raise FlowError(f"{self._describe(host)} did not send its cells of {segment}")
                cells, after = reply
                views[host].update((k, (ts, v)) for k, ts, v in cells)
                if after is None:
                    break
        merged: dict[bytes, Cell] = {}
        for view in views.values():
            for key, cell in view.items():
                merged[key] = reconcile(merged.get(key), cell)  # type: ignore[assignment]
        sent = 0
        for host, view in views.items():
            missing = [(k, c[0], c[1]) for k, c in merged.items() if view.get(k) != c]
            if not missing:
                continue
            sent += len(missing)
            if host == self.host_id:
                self.storage.ingest((k, (ts, v)) for k, ts, v in missing)
            else:
                yield from self._push(self.gossip.address_of(host), missing)  # type: ignore[arg-type]
        self.counters["repaired_cells"] += sent
        return sent
