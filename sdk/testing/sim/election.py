"""Several masters in the simulator: a ZooKeeper ensemble (`SimEnsemble`: sessions, and
the contenders' ephemeral sequential znodes) and the masters' candidacies
(`SimElection`), each the real `Leadership` state machine, fed as the daemon's kazoo
contender feeds it.

The model. The ensemble sits at `ZOOKEEPER_ADDRESS`: a master can reach it unless a
partition cuts the master off (or the master is down). Every `heartbeat` seconds each
live master that can reach it has its session heard (and its lease renewed with the
children it reads); one that cannot is SUSPENDED, and its session expires once it has
not been heard for the session timeout, its contender znode with it (LOST). The lowest
contender leads: elected, a master starts a new engine from the registry as it stands
(and takes the leader epoch); deposed (its lease ran out, its session expired), it
drops its engine at once, withdraws its znode when it can reach the ensemble, and
contends again with a fresh candidacy. Followers (agents, schedulers) are told the
lowest contender's address whenever it changes, as the ZooKeeper detector reports it,
and look it up when they lose their master (`MasterLost`).

A master acts only while its `Leadership.acts(now)`: what its engine emits otherwise is
dropped (`SimCluster` asks `acting` before carrying out a master's actions), and its
registry writes are fenced by the leader epoch besides (counted in `fenced_writes`).
`overlaps` records every instant at which more than one master could act: the
invariant is that it stays empty.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from corral.engines.master import REGISTRY_ACTIONS, MasterEngine, apply_to_registry
from corral.engines.master.leadership import HEARTBEAT_FRACTION, Leadership, Standing
from corral.net.zookeeper import CONTENDER_PREFIX, Session, leader_of
from corral.protos import corral_pb2 as pb
from corral.testing.sim.faults import ZOOKEEPER_ADDRESS

if TYPE_CHECKING:
    from corral.testing.sim.cluster import SimCluster


@dataclass
class _Session:
    owner: str
    last_heard: float
    open: bool = True


class SimEnsemble:
    """The ensemble's view: sessions (heard when, by whom) and the contender znodes."""

    def __init__(self, session_timeout: float) -> None:
        self.session_timeout = session_timeout
        self._sessions: dict[int, _Session] = {}
        self._session_ids = itertools.count(1)
        self._sequence = itertools.count()
        #: contender znode name -> the session that owns it
        self.contenders: dict[str, int] = {}

    def open(self, owner: str, now: float) -> int:
        session = next(self._session_ids)
        self._sessions[session] = _Session(owner, now)
        return session

    def alive(self, session: int) -> bool:
        return self._sessions[session].open

    def heard(self, session: int, now: float) -> None:
        self._sessions[session].last_heard = now

    def close(self, session: int) -> None:
        """The session ends (closed by its owner, or expired): its znodes go."""
        self._sessions[session].open = False
        self.contenders = {name: s for name, s in self.contenders.items() if s != session}

    def expire(self, now: float) -> None:
        """Every session not heard for the session timeout expires."""
        for session_id, session in self._sessions.items():
            if session.open and now - session.last_heard >= self.session_timeout:
                self.close(session_id)

    def contend(self, session: int) -> str:
        """An ephemeral sequential contender znode for `session`; its name."""
        name = f"{CONTENDER_PREFIX}{next(self._sequence):010d}"
        self.contenders[name] = session
        return name

    def children(self) -> list[str]:
        return list(self.contenders)

    def leader(self) -> str | None:
        """The address of the master whose contender is lowest (None: no contender)."""
        name = leader_of(self.contenders)
        return None if name is None else self._sessions[self.contenders[name]].owner


@dataclass(eq=False)
class Candidate:
    """One live master process: its candidacy, its session, its engine while it leads."""

    address: str
    leadership: Leadership
    session: int | None = None
    engine: MasterEngine | None = None
    #: the leader epoch it took when elected
    epoch: int = 0


@dataclass
class Term:
    """One leadership: who, from when (until when, once it ended)."""

    address: str
    elected_at: float
    master_id: str
    ended_at: float | None = None


class SimElection:
    """The masters of a `SimCluster` with several masters (see the module's docstring)."""

    def __init__(self, cluster: SimCluster, addresses: list[str], session_timeout: float) -> None:
        self.cluster = cluster
        self.session_timeout = session_timeout
        self.heartbeat = session_timeout * HEARTBEAT_FRACTION
        self.ensemble = SimEnsemble(session_timeout)
        self.candidates: dict[str, Candidate] = {a: self._candidate(a) for a in addresses}
        self.epoch = 0
        #: the leader's address as last told to the followers
        self.reported: str | None = None
        self.terms: list[Term] = []
        self.fenced_writes = 0
        #: (time, addresses) whenever more than one master could act at once
        self.overlaps: list[tuple[float, list[str]]] = []
        #: followers that lost their master while no leader was known: told the next one
        self._waiting: list[Callable[[str, float], None]] = []

    def _candidate(self, address: str) -> Candidate:
        return Candidate(address, Leadership(self.session_timeout))

    # -- what the cluster asks --------------------------------------------------------
    def acting(self, address: str) -> bool:
        candidate = self.candidates.get(address)
        return candidate is not None and candidate.leadership.acts(self.cluster.clock.now)

    def leader_address(self) -> str | None:
        """Where followers send: the lowest contender's master (as the detector says)."""
        return self.ensemble.leader()

    def find_master(self, connect: Callable[[str, float], None]) -> None:
        """A follower lost its master: `connect` it to the leader, now or once known."""
        leader = self.leader_address()
        if leader is None:
            self._waiting.append(connect)
        else:
            connect(leader, self.cluster.clock.now)

    def crashed(self, address: str) -> None:
        """The master process at `address` died: its session lives on until it expires."""
        candidate = self.candidates.pop(address, None)
        if candidate is not None and candidate.engine is not None:
            self._end_term(candidate)

    def restarted(self, address: str) -> None:
        self.candidates[address] = self._candidate(address)
        self.cluster.schedule(0.0, self.step)

    # -- the heartbeat ------------------------------------------------------------------
    def start(self) -> None:
        self.step()
        self._schedule()

    def _schedule(self) -> None:
        def beat() -> None:
            self.step()
            self._schedule()

        self.cluster.schedule(self.heartbeat, beat)

    def step(self) -> None:
        """One round of sessions, observations and changes (see the module's docstring)."""
        cluster = self.cluster
        now = cluster.clock.now
        self.ensemble.expire(now)
        connected = []
        for candidate in self.candidates.values():
            lead = candidate.leadership
            if candidate.session is not None and not self.ensemble.alive(candidate.session):
                candidate.session = None
                lead.session_changed(Session.LOST, now)
            if cluster.network.plan.partitioned(candidate.address, ZOOKEEPER_ADDRESS, now):
                if candidate.session is not None and lead.session is Session.CONNECTED:
                    lead.session_changed(Session.SUSPENDED, now)
                continue
            if candidate.session is None:
                candidate.session = self.ensemble.open(candidate.address, now)
            else:
                self.ensemble.heard(candidate.session, now)
            if lead.session is not Session.CONNECTED:
                lead.session_changed(Session.CONNECTED, now)
            if lead.candidacy is None and lead.standing is not Standing.DEPOSED:
                lead.submitted(self.ensemble.contend(candidate.session))
            connected.append(candidate)
        children = self.ensemble.children()
        for candidate in connected:
            candidate.leadership.observed(children, now)
        for candidate in list(self.candidates.values()):
            candidate.leadership.tick(now)
            if candidate.leadership.standing is Standing.LEADING and candidate.engine is None:
                self._elect(candidate, now)
            elif candidate.leadership.standing is Standing.DEPOSED:
                self._depose(candidate, candidate in connected)
        acting = sorted(a for a, c in self.candidates.items() if c.leadership.acts(now))
        if len(acting) > 1:
            self.overlaps.append((now, acting))
        self._tell_followers()

    def _tell_followers(self) -> None:
        leader = self.leader_address()
        if leader is None:
            return
        now = self.cluster.clock.now
        if leader != self.reported:
            self.reported = leader
            self._waiting.clear()
            for engine in self.cluster.followers():
                engine.connect(leader, now)
                self.cluster.pump(engine)
        waiting, self._waiting = self._waiting, []
        for connect in waiting:
            connect(leader, now)

    def _elect(self, candidate: Candidate, now: float) -> None:
        """Take the leader epoch and start an engine from the registry as it stands."""
        cluster = self.cluster
        self.epoch += 1
        candidate.epoch = epoch = self.epoch
        master_id = f"sim{cluster.seed}-{candidate.address.rsplit('-', 1)[-1]}e{epoch}"
        info = pb.MasterInfo(id=master_id, hostname=candidate.address, port=5050, transport=candidate.address,
                             version="sim", start_time=now)
        engine = MasterEngine(info, cluster.master_config, now=now, registry=cluster.registry)
        candidate.engine = engine

        def write(action: object) -> None:
            if epoch != self.epoch:
                self.fenced_writes += 1  # another master took the epoch: refused
            else:
                apply_to_registry(cluster.registry, action)  # type: ignore[arg-type]

        cluster.add_master_node(engine, candidate.address, {action: write for action in REGISTRY_ACTIONS},
                                acting=lambda: candidate.leadership.acts(cluster.clock.now))
        self.terms.append(Term(candidate.address, now, master_id))

    def _end_term(self, candidate: Candidate) -> None:
        for term in self.terms:
            if term.address == candidate.address and term.ended_at is None:
                term.ended_at = self.cluster.clock.now
        candidate.engine = None

    def _depose(self, candidate: Candidate, reachable: bool) -> None:
        """Drop the engine at once; withdraw (when the ensemble can be reached: otherwise
        the session expires on its own) and contend again afresh."""
        if candidate.engine is not None:
            self.cluster.drop_master_node(candidate.address)
            self._end_term(candidate)
        if candidate.session is not None and reachable:
            self.ensemble.close(candidate.session)
        self.candidates[candidate.address] = self._candidate(candidate.address)

