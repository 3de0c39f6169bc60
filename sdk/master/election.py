"""Leader election among masters through ZooKeeper, Mesos' way: every master is a
contender, an ephemeral sequential znode `PATH/json.info_NNNNNNNNNN` holding its
MasterInfo as JSON; the lowest sequence number leads.

`Leadership` holds the rules as a pure state machine (no ZooKeeper, no clock of its
own): it is fed what the client observed and the time, and says when this master is
elected, when it is deposed, and whether it may act as leader right now. `Contender`
feeds it from a real ensemble through kazoo; the simulator feeds it from a fake one.

A leader acts only under a lease: a request it sent at time t that the ensemble
answered proves its session was alive at t, and ZooKeeper cannot expire that session
(and so cannot elect anybody else) before t + session timeout. The leader acts until
t + `LEASE_FRACTION` x timeout and renews the lease with every answered request. A
leader whose process was frozen (SIGSTOP, a long GC pause, a stalled VM) past that
bound finds, the moment it runs again, that its lease has run out: it stops acting at
once, before ZooKeeper even tells it that its session expired.
"""
from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from typing import Callable

from corral.net.zookeeper import CONTENDER_PREFIX, DEFAULT_SESSION_TIMEOUT, Session, ZooKeeperUrl, leader_of

log = logging.getLogger(__name__)

#: the share of the session timeout a leader acts for after the ensemble last answered it
LEASE_FRACTION = 0.75
#: how often a leader asks the ensemble for a round trip that renews its lease, as a
#: share of the session timeout (several renewals fit in one lease)
HEARTBEAT_FRACTION = 0.15


class Standing(enum.Enum):
    """Where one candidacy stands. DEPOSED is final for it: a master that led and lost
    the leadership acts no more and joins again as a new contender."""

    CONTENDING = "contending"
    LEADING = "leading"
    DEPOSED = "deposed"


class Change(enum.Enum):
    ELECTED = "elected"
    DEPOSED = "deposed"


class Leadership:
    """One candidacy's rules. Each input returns the Change it causes, or None."""

    def __init__(self, session_timeout: float = DEFAULT_SESSION_TIMEOUT) -> None:
        if not session_timeout > 0:
            raise ValueError(f"session timeout {session_timeout!r} is not a positive number of seconds")
        self.session_timeout = session_timeout
        self.standing = Standing.CONTENDING
        self.session = Session.CONNECTED
        #: our contender znode's name, once created
        self.candidacy: str | None = None
        #: the leading contender's znode name, as last observed
        self.leader: str | None = None
        #: until when (monotonic) we may act as leader
        self.lease_until = float("-inf")
        #: why we were deposed (shown in logs, /health and the metrics)
        self.reason = ""

    @property
    def lease(self) -> float:
        return self.session_timeout * LEASE_FRACTION

    def submitted(self, name: str) -> None:
        """Our contender znode `name` (its last path element) was created."""
        self.candidacy = name

    def observed(self, children: list[str], sent_at: float) -> Change | None:
        """The path's children, read by a request sent at `sent_at`."""
        self.leader = leader_of(children)
        if self.standing is Standing.DEPOSED:
            return None
        if self.candidacy is not None and self.candidacy not in children:
            return self._depose("our contender znode is gone") if self.standing is Standing.LEADING else None
        if self.standing is Standing.LEADING:
            if self.leader != self.candidacy:
                return self._depose(f"{self.leader} leads now")
            self.renewed(sent_at)
            return None
        if self.candidacy is not None and self.leader == self.candidacy and self.session is Session.CONNECTED:
            self.standing = Standing.LEADING
            self.lease_until = sent_at + self.lease
            return Change.ELECTED
        return None

    def renewed(self, sent_at: float) -> None:
        """The ensemble answered a request sent at `sent_at`: the session lived then."""
        if self.standing is Standing.LEADING and self.session is Session.CONNECTED:
            self.lease_until = max(self.lease_until, sent_at + self.lease)

    def session_changed(self, state: Session, now: float) -> Change | None:
        """The client's connection changed. SUSPENDED pauses renewals (the lease runs
        out unless the connection comes back in time); LOST ends the candidacy."""
        self.session = state
        if state is Session.LOST:
            self.candidacy = None
            if self.standing is Standing.LEADING:
                return self._depose("the ZooKeeper session expired")
        return self.tick(now)

    def fenced(self, detail: str) -> Change | None:
        """A registry write was refused because another master took the leader epoch."""
        if self.standing is Standing.LEADING:
            return self._depose(f"fenced off the registry: {detail}")
        return None

    def tick(self, now: float) -> Change | None:
        """Time passed: a leader whose lease ran out is deposed."""
        if self.standing is Standing.LEADING and now >= self.lease_until:
            return self._depose(f"no answer from ZooKeeper for {self.lease:g}s (session {self.session.value})")
        return None

    def acts(self, now: float) -> bool:
        """May this master act as leader at `now` (offers, launches, registry writes)?"""
        return self.standing is Standing.LEADING and now < self.lease_until

    def _depose(self, reason: str) -> Change:
        self.standing = Standing.DEPOSED
        self.lease_until = float("-inf")
        self.reason = reason
        return Change.DEPOSED


class _Wake(enum.Enum):
    """What the kazoo threads hand the contender's own thread (they make no ZooKeeper
    calls themselves: a call from a listener deadlocks kazoo)."""

    CHILDREN_CHANGED = "children changed"
    STOP = "stop"


class Contender:
    """A master's candidacy on a real ensemble (kazoo). `on_change` is called on the
    contender's thread with each Change; `leadership.acts(clock())` is the gate the
    master checks before it acts. After DEPOSED the contender stops; the master makes
    a new one to join again.

    The contender's thread reads the path's children itself (a watch only wakes it),
    so that every observation carries the time its request was sent; a leader reads
    them every `HEARTBEAT_FRACTION` of the session timeout, which renews its lease and
    notices at once if its znode is gone."""

    def __init__(self, url: ZooKeeperUrl, info: bytes, on_change: Callable[[Change], None], *,
                 session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        self.url = url
        self.info = info
        self.clock = clock
        self.leadership = Leadership(session_timeout)
        self._on_change = on_change
        self._wakes: queue.SimpleQueue[_Wake | Session] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self.client = KazooClient(hosts=url.connect_string, timeout=session_timeout,
                                  connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
                                  command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0))
        self.client.add_listener(self._listener)
        self._thread = threading.Thread(target=self._run, name="master-contender", daemon=True)

    @property
    def session(self) -> Session:
        return self.leadership.session

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Withdraw: stop the thread and close the session (our znode goes with it)."""
        self._stopped.set()
        self._wakes.put(_Wake.STOP)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # the session may be gone already
            log.debug("closing the ZooKeeper client", exc_info=True)

    # -- kazoo's threads: hand over, never call ZooKeeper here -----------------------
    def _listener(self, state: str) -> None:
        self._wakes.put(Session(state.lower()))

    def _children_changed(self, _children: list[str]) -> bool:
        self._wakes.put(_Wake.CHILDREN_CHANGED)
        return not self._stopped.is_set()  # False ends the watch

    # -- the contender's thread -------------------------------------------------------
    def _run(self) -> None:
        self.client.start_async()
        heartbeat = self.leadership.session_timeout * HEARTBEAT_FRACTION
        look = True
        watching = False
        while not self._stopped.is_set():
            change = None
            if self.client.connected:
                try:
                    if self.leadership.candidacy is None:
                        self._submit()
                        look = True
                    if not watching:
                        from kazoo.recipe.watchers import ChildrenWatch
                        ChildrenWatch(self.client, self.url.path, self._children_changed)
                        watching = True
                    if look or self.leadership.standing is Standing.LEADING:
                        sent_at = self.clock()
                        children = self.client.get_children(self.url.path)
                        look = False
                        change = self.leadership.observed(children, sent_at)
                except Exception as exc:  # a request failed: the session events say why
                    log.warning("ZooKeeper request to %s failed: %s", self.url.connect_string, exc)
            change = change or self.leadership.tick(self.clock())
            if change is not None and self._changed(change):
                return
            try:
                wake = self._wakes.get(timeout=heartbeat)
            except queue.Empty:
                continue
            if wake is _Wake.STOP:
                return
            if wake is _Wake.CHILDREN_CHANGED:
                look = True
            elif isinstance(wake, Session):
                change = self.leadership.session_changed(wake, self.clock())
                look = look or wake is Session.CONNECTED
                if change is not None and self._changed(change):
                    return

    def _submit(self) -> None:
        self.client.ensure_path(self.url.path)
        created = self.client.create(f"{self.url.path}/{CONTENDER_PREFIX}", self.info, ephemeral=True, sequence=True)
        self.leadership.submitted(created.rsplit("/", 1)[1])
        log.info("contending for the leadership as %s", created)

    def _changed(self, change: Change) -> bool:
        """Report a change; True when the contender is done (deposed)."""
        if change is Change.DEPOSED:
            log.warning("no longer the leading master: %s", self.leadership.reason)
        else:
            log.info("elected the leading master (%s)", self.leadership.candidacy)
        self._on_change(change)
        return change is Change.DEPOSED
