"""Gossip membership and the phi-accrual failure detector, sans I/O.

Every node keeps an `EndpointState` per node it knows: the generation (when that node
last started), a heartbeat version and application states (`AppState`: address, name,
status, tokens, load...), each state stamped with a version from its owner's one
counter. Each round a node bumps its heartbeat and sends a SYN with a digest of what it
knows (host, generation, highest version) to a random live peer, sometimes to an
unreachable one, and to a seed when the peer was not one; the receiver answers with
the states the sender lacks and asks for the ones it lacks (ACK), and the sender sends
those (ACK2). Newer generations replace old state wholesale; within a generation,
higher versions win. States therefore spread in O(log n) rounds.

A node is up when its heartbeat keeps advancing: the failure detector keeps the
intervals between heartbeat changes and convicts a node whose phi, the time since its
last heartbeat over the mean interval scaled by 1/ln 10, exceeds the threshold (8 by
default, as Cassandra). A node that shuts down cleanly says so (SHUTDOWN) and is marked
down at once.
"""
from __future__ import annotations

import enum
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from corral.examples.cassandra.messages import Verb

PHI_FACTOR = 1.0 / math.log(10.0)
ARRIVAL_WINDOW = 100


class AppState(str, enum.Enum):
    ADDRESS = "address"
    NAME = "name"
    STATUS = "status"
    TOKENS = "tokens"
    LOAD = "load"
    SHUTDOWN = "shutdown"


class Status(str, enum.Enum):
    """A node's place in the ring, as gossiped (the second letter of nodetool status)."""

    BOOT = "BOOT"                  # joining: tokens announced, streaming (J)
    BOOT_REPLACE = "BOOT_REPLACE"  # joining in place of a dead node, with its tokens (J)
    NORMAL = "NORMAL"              # serving its ranges (N)
    LEAVING = "LEAVING"            # decommissioning: streaming its ranges away (L)
    LEFT = "LEFT"                  # gone from the ring

    @property
    def letter(self) -> str:
        return {"BOOT": "J", "BOOT_REPLACE": "J", "NORMAL": "N", "LEAVING": "L", "LEFT": "L"}[self.value]


@dataclass
class EndpointState:
    host_id: str
    generation: int
    heartbeat: int = 0
    states: dict[str, tuple[Any, int]] = field(default_factory=dict)
    alive: bool = False

    def get(self, key: AppState, default: Any = None) -> Any:
        entry = self.states.get(key.value)
        return default if entry is None else entry[0]

    @property
    def max_version(self) -> int:
        return max([self.heartbeat, *(v for _, v in self.states.values())])

    def delta(self, since: int) -> tuple[str, int, int, dict[str, tuple[Any, int]]]:
        return (self.host_id, self.generation, self.heartbeat,
                {k: (v, ver) for k, (v, ver) in self.states.items() if ver > since})

    @property
    def status(self) -> Status | None:
        value = self.get(AppState.STATUS)
        return Status(value[0]) if value else None

    @property
    def status_detail(self) -> str | None:
        value = self.get(AppState.STATUS)
        return value[1] if value else None


class FailureDetector:
    """Phi accrual over heartbeat arrival times, per host."""

    def __init__(self, expected_interval: float, threshold: float = 8.0) -> None:
        self.initial = expected_interval
        self.threshold = threshold
        self._arrivals: dict[str, deque[float]] = {}
        self._last: dict[str, float] = {}

    def report(self, host: str, now: float) -> None:
        last = self._last.get(host)
        window = self._arrivals.setdefault(host, deque([self.initial], maxlen=ARRIVAL_WINDOW))
        if last is not None:
            window.append(max(now - last, self.initial / 10))
        self._last[host] = now

    def phi(self, host: str, now: float) -> float:
        last = self._last.get(host)
        if last is None:
            return math.inf
        window = self._arrivals[host]
        mean = sum(window) / len(window)
        return PHI_FACTOR * (now - last) / mean

    def is_alive(self, host: str, now: float) -> bool:
        return self.phi(host, now) <= self.threshold

    def forget(self, host: str) -> None:
        self._arrivals.pop(host, None)
        self._last.pop(host, None)


Digest = tuple[str, int, int]  # host, generation, max version
Delta = tuple[str, int, int, dict[str, tuple[Any, int]]]


class Gossiper:
    """The endpoint table and the gossip exchanges of one node (see the module docstring).

    `send(address, message)` sends a message; `on_change(host, keys)` is told which
    application states of a host changed (after they are applied); `on_alive(host,
    alive)` when the failure detector's verdict on a host changes."""

    def __init__(self, host_id: str, generation: int, cluster: str, seeds: Iterable[str], interval: float,
                 phi_threshold: float, rng: random.Random, send: Callable[[str, tuple[Any, ...]], None],
                 on_change: Callable[[str, set[str]], None], on_alive: Callable[[str, bool], None]) -> None:
        self.host_id = host_id
        self.cluster = cluster
        self.seeds = list(seeds)
        self.interval = interval
        self.rng = rng
        self.send = send
        self.on_change = on_change
        self.on_alive = on_alive
        self.local = EndpointState(host_id, generation, alive=True)
        self.endpoints: dict[str, EndpointState] = {host_id: self.local}
        self.detector = FailureDetector(interval * 2, phi_threshold)
        self._version = 0
        #: hosts removed from the ring for good (replaced): their gossip is ignored
        self.removed: set[str] = set()

    # -- local state ---------------------------------------------------------------------
    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def set_local(self, values: dict[AppState, Any]) -> None:
        for key, value in values.items():
            self.local.states[key.value] = (value, self._next_version())
        self.on_change(self.host_id, {k.value for k in values})

    def address_of(self, host: str) -> str | None:
        state = self.endpoints.get(host)
        return state.get(AppState.ADDRESS) if state else None

    def is_alive(self, host: str) -> bool:
        state = self.endpoints.get(host)
        return state is not None and state.alive

    # -- rounds ----------------------------------------------------------------------------
    def round(self, now: float) -> None:
        """One gossip round: beat, gossip to a live peer, maybe to a dead one and a seed,
        then judge every peer."""
        self.local.heartbeat = self._next_version()
        digests = self.digests()
        syn = (Verb.GOSSIP_SYN, self.cluster, digests)
        own = self.address_of(self.host_id)
        live = [h for h, s in self.endpoints.items() if h != self.host_id and s.alive and s.get(AppState.ADDRESS)]
        dead = [h for h, s in self.endpoints.items()
                if h != self.host_id and not s.alive and s.get(AppState.ADDRESS) and s.status is not Status.LEFT]
        contacted: set[str] = set()
        if live:
            peer = self.rng.choice(sorted(live))
            contacted.add(self.address_of(peer))  # type: ignore[arg-type]
        if dead and self.rng.random() < len(dead) / (len(live) + 1):
            contacted.add(self.address_of(self.rng.choice(sorted(dead))))  # type: ignore[arg-type]
        seeds = [s for s in self.seeds if s != own]
        if seeds and (not contacted & set(seeds) or len(live) < len(seeds)):
            if not live or self.rng.random() < len(seeds) / (len(live) + len(dead) + 1):
                contacted.add(self.rng.choice(seeds))
        for address in contacted:
            self.send(address, syn)
        self.judge(now)

    def judge(self, now: float) -> None:
        for host, state in self.endpoints.items():
            if host == self.host_id:
                continue
            alive = not state.get(AppState.SHUTDOWN) and self.detector.is_alive(host, now)
            if alive != state.alive:
                state.alive = alive
                self.on_alive(host, alive)

    def digests(self) -> list[Digest]:
        return [(h, s.generation, s.max_version) for h, s in self.endpoints.items()]

    # -- exchanges -------------------------------------------------------------------------
    def on_syn(self, sender: str, cluster: str, digests: Iterable[Digest], now: float) -> None:
        if cluster != self.cluster:
            return
        requests: list[Digest] = []
        deltas: list[Delta] = []
        mentioned = set()
        for host, generation, version in digests:
            mentioned.add(host)
            if host in self.removed:
                continue
            mine = self.endpoints.get(host)
            if mine is None or generation > mine.generation:
                requests.append((host, generation, 0))
            elif generation < mine.generation:
                deltas.append(mine.delta(-1))
            elif version > mine.max_version:
                requests.append((host, generation, mine.max_version))
            elif version < mine.max_version:
                deltas.append(mine.delta(version))
        for host, state in self.endpoints.items():
            if host not in mentioned:
                deltas.append(state.delta(-1))
        self.send(sender, (Verb.GOSSIP_ACK, requests, deltas))

    def on_ack(self, sender: str, requests: Iterable[Digest], deltas: Iterable[Delta], now: float) -> None:
        self.apply(deltas, now)
        answer = []
        for host, generation, version in requests:
            mine = self.endpoints.get(host)
            if mine is None:
                continue
            answer.append(mine.delta(version if generation == mine.generation else -1))
        if answer:
            self.send(sender, (Verb.GOSSIP_ACK2, answer))

    def on_shutdown(self, host: str, generation: int, now: float) -> None:
        state = self.endpoints.get(host)
        if state is None or state.generation != generation or host == self.host_id:
            return
        state.states[AppState.SHUTDOWN.value] = (True, state.max_version + 1)
        state.heartbeat = state.max_version
        self.detector.forget(host)
        if state.alive:
            state.alive = False
            self.on_alive(host, False)

    def apply(self, deltas: Iterable[Delta], now: float) -> None:
        for host, generation, heartbeat, states in deltas:
            if host == self.host_id or host in self.removed:
                continue
            mine = self.endpoints.get(host)
            if mine is None or generation > mine.generation:
                was_alive = mine.alive if mine is not None else False
                fresh = EndpointState(host, generation, heartbeat, dict(states))
                self.endpoints[host] = fresh
                self.detector.forget(host)
                if mine is not None:  # a new generation: the node restarted, which is proof of life
                    self.detector.report(host, now)
                    fresh.alive = not fresh.get(AppState.SHUTDOWN)
                self.on_change(host, set(states) | (set(mine.states) if mine is not None else set()))
                if fresh.alive != was_alive:
                    self.on_alive(host, fresh.alive)
                continue
            if generation < mine.generation:
                continue
            changed = set()
            for key, (value, version) in states.items():
                current = mine.states.get(key)
                if current is None or version > current[1]:
                    mine.states[key] = (value, version)
                    changed.add(key)
            if heartbeat > mine.heartbeat:
                mine.heartbeat = heartbeat
                self.detector.report(host, now)
            if changed:
                self.on_change(host, changed)

    def remove(self, host: str) -> None:
        """Forget `host` for good (it was replaced); its gossip is ignored from now on."""
        self.removed.add(host)
        self.endpoints.pop(host, None)
        self.detector.forget(host)
