"""A deterministic in-process network for store nodes: a fake clock, and frames that are
delayed, dropped, or cut off by partitions, all drawn from one seed.

`SimCluster` runs real `Node` engines on real `Storage` (in a temporary directory, with
the commit log written but not fsynced: a simulated crash loses only what was never
committed, as SIGKILL does). Each node's sends leave after its storage commits, exactly
as in the node process. Clients are `SimClient`s that send requests to a coordinator and
collect the results. Same seed, same run: every random choice (nodes' and network's)
comes from generators seeded from it.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from corral.examples.cassandra.messages import Verb
from corral.examples.cassandra.node import Mode, Node, NodeConfig
from corral.examples.cassandra.storage import Storage, SyncMode


@dataclass
class NetworkFaults:
    """How the network misbehaves: each frame is dropped with probability `drop` and
    otherwise delivered after a uniform delay in [min_delay, max_delay] seconds."""

    drop: float = 0.0
    min_delay: float = 0.0005
    max_delay: float = 0.002


@dataclass(order=True)
class _Delivery:
    at: float
    seq: int
    source: str | bytes = field(compare=False)
    destination: str | bytes = field(compare=False)
    messages: list[Any] = field(compare=False)


class SimClient:
    """Sends requests to coordinators and keeps each answer: (error, payload) by rid."""

    def __init__(self, cluster: "SimCluster", name: bytes) -> None:
        self.cluster = cluster
        self.name = name
        self.results: dict[int, tuple[Any, Any]] = {}
        self._rid = 0

    def _request(self, coordinator: str, verb: Verb, *fields: Any) -> int:
        self._rid += 1
        self.cluster.deliver(self.name, coordinator, [(verb, self._rid, *fields)])
        return self._rid

    def put(self, coordinator: str, key: bytes, value: bytes, consistency: str = "QUORUM",
            timestamp: int | None = None) -> int:
        return self._request(coordinator, Verb.PUT, key, value, consistency, timestamp)

    def get(self, coordinator: str, key: bytes, consistency: str = "QUORUM") -> int:
        return self._request(coordinator, Verb.GET, key, consistency)

    def delete(self, coordinator: str, key: bytes, consistency: str = "QUORUM", timestamp: int | None = None) -> int:
        return self._request(coordinator, Verb.DELETE, key, consistency, timestamp)

    def request(self, coordinator: str, verb: Verb) -> int:
        return self._request(coordinator, verb)

    def receive(self, messages: list[Any]) -> None:
        for message in messages:
            if message[0] == Verb.RESULT:
                self.results[message[1]] = (message[2], message[3])

    def wait(self, rid: int, timeout: float = 30.0) -> tuple[Any, Any]:
        """Run the cluster until request `rid` is answered: (error, payload)."""
        self.cluster.run_until(lambda: rid in self.results, timeout)
        return self.results[rid]


class SimCluster:
    """Store nodes on a simulated network (see the module docstring)."""

    def __init__(self, root: Path, seed: int, faults: NetworkFaults | None = None, **config: Any) -> None:
        self.root = Path(root)
        self.rng = random.Random(seed)
        self.seed = seed
        self.faults = faults or NetworkFaults()
        self.now = 1_000_000.0
        self.config = dict(gossip_interval=0.5, ring_delay=3.0, write_timeout=1.0, read_timeout=1.0,
                           request_timeout=2.0, num_tokens=8)
        self.config.update(config)
        self.nodes: dict[str, Node] = {}
        self.storages: dict[str, Storage] = {}
        self.configs: dict[str, NodeConfig] = {}
        self.clients: dict[bytes, SimClient] = {}
        #: pairs of endpoints that cannot reach each other
        self.cut: set[frozenset[str | bytes]] = set()
        self._queue: list[_Delivery] = []
        self._seq = 0

    # -- membership --------------------------------------------------------------------
    def start_node(self, name: str, seeds: list[str] | None = None, **overrides: Any) -> Node:
        address = f"{name}:7000"
        settings = dict(self.config, **overrides)
        config = NodeConfig(name=name, address=address, seeds=seeds if seeds is not None else [address], **settings)
        self.configs[address] = config
        return self._boot(address)

    def _boot(self, address: str) -> Node:
        config = self.configs[address]
        storage = Storage(self.root / config.name, sync=SyncMode.PERIODIC, clock=lambda: self.now)
        node = Node(config, storage, self.now, random.Random(self.rng.getrandbits(64)))
        self.storages[address] = storage
        self.nodes[address] = node
        self._flush(address)
        return node

    def crash(self, address: str) -> None:
        """The process dies: what it had not committed is lost, frames to it vanish."""
        node = self.nodes.pop(address)
        node.outbox.clear()
        self.storages.pop(address).close()  # every event's writes were committed with it

    def restart(self, address: str, **overrides: Any) -> Node:
        for key, value in overrides.items():
            setattr(self.configs[address], key, value)
        return self._boot(address)

    def stop(self, address: str) -> None:
        """A clean shutdown: the node tells its peers, then stops (without draining)."""
        node = self.nodes[address]
        node.shutdown()
        self._flush(address)
        self.crash(address)

    def close(self) -> None:
        for address in list(self.nodes):
            self.crash(address)

    def client(self, name: str = "client") -> SimClient:
        key = name.encode()
        if key not in self.clients:
            self.clients[key] = SimClient(self, key)
        return self.clients[key]

    # -- faults --------------------------------------------------------------------------
    def partition(self, a: str | bytes, b: str | bytes) -> None:
        self.cut.add(frozenset((a, b)))

    def isolate(self, address: str) -> None:
        """Cut `address` off from every other node (clients still reach it)."""
        for other in self.configs:
            if other != address:
                self.partition(address, other)

    def heal(self) -> None:
        self.cut.clear()

    # -- the network ---------------------------------------------------------------------
    def deliver(self, source: str | bytes, destination: str | bytes, messages: list[Any]) -> None:
        if frozenset((source, destination)) in self.cut:
            return
        if self.faults.drop and self.rng.random() < self.faults.drop:
            return
        delay = self.rng.uniform(self.faults.min_delay, self.faults.max_delay)
        self._seq += 1
        heapq.heappush(self._queue, _Delivery(self.now + delay, self._seq, source, destination, messages))

    def _flush(self, address: str) -> None:
        node = self.nodes.get(address)
        if node is None:
            return
        self.storages[address].commit()
        for destination, messages in node.take_outbox().items():
            self.deliver(address, destination, messages)

    def step(self) -> bool:
        """Advance to the next event (a delivery or a node's timer); False when none."""
        next_timer = min((n.next_deadline() for n in self.nodes.values()), default=float("inf"))
        next_delivery = self._queue[0].at if self._queue else float("inf")
        if next_timer == float("inf") and next_delivery == float("inf"):
            return False
        if next_delivery <= next_timer:
            delivery = heapq.heappop(self._queue)
            self.now = max(self.now, delivery.at)
            if frozenset((delivery.source, delivery.destination)) in self.cut:
                return True  # cut while in flight
            if isinstance(delivery.destination, bytes):
                client = self.clients.get(delivery.destination)
                if client is not None:
                    client.receive(delivery.messages)
                return True
            node = self.nodes.get(delivery.destination)
            if node is not None:
                node.receive(delivery.source, delivery.messages, self.now)
                self._flush(delivery.destination)
            return True
        self.now = max(self.now, next_timer)
        for address, node in list(self.nodes.items()):
            if node.next_deadline() <= self.now:
                node.tick(self.now)
                self._flush(address)
        return True

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            next_timer = min((n.next_deadline() for n in self.nodes.values()), default=float("inf"))
            next_delivery = self._queue[0].at if self._queue else float("inf")
            if min(next_timer, next_delivery) > end:
                break
            self.step()
        self.now = end

    def run_until(self, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Step until `predicate()` is truthy; AssertionError after `timeout` simulated seconds."""
        end = self.now + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.now > end or not self.step():
                raise AssertionError(f"seed {self.seed}: condition not reached within {timeout:g} simulated seconds")

    # -- views ----------------------------------------------------------------------------
    def states(self, observer: str) -> dict[str, str]:
        """name -> nodetool state ("UN", "DN", "UJ"...) as `observer` sees the ring."""
        return {n["name"]: n["state"] for n in self.nodes[observer].describe_ring()["nodes"]}

    def all_normal(self, names: list[str] | None = None) -> bool:
        """Every running node sees every running node UN (and only them, when `names`)."""
        running = sorted(n.config.name for n in self.nodes.values())
        expected = sorted(names) if names is not None else running
        for address, node in self.nodes.items():
            if node.mode is not Mode.NORMAL:
                return False
            states = self.states(address)
            if sorted(k for k, v in states.items() if v == "UN") != expected:
                return False
        return True
