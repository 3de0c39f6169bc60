"""A master's candidacy for the leadership, as a pure state machine (`Leadership`): no
ZooKeeper, no clock of its own. It is fed what a ZooKeeper client observed (the contender
znodes under the masters' path, the session's state) with the time, and says when this
master is elected, when it is deposed, and whether it may act as leader right now
(`acts`). The master daemon's contender (`corral.master.election`) feeds it from a real
ensemble through kazoo; the simulator feeds it from a fake one. The master engine never
sees it: a master that is elected builds a new engine from the registry, and one that
stops acting drops its engine.

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
from typing import Container

from corral.net.zookeeper import DEFAULT_SESSION_TIMEOUT, Session, leader_of

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
        #: the client's session, as last reported (none yet: LOST, as kazoo starts)
        self.session = Session.LOST
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

    def observed(self, children: list[str], sent_at: float, unreadable: Container[str] = ()) -> Change | None:
        """The path's children, read by a request sent at `sent_at`; `unreadable`: the
        contenders found to hold garbage (they lead nobody)."""
        self.leader = leader_of(children, unreadable)
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

    def negotiated(self, session_timeout: float) -> None:
        """The ensemble granted a session timeout (it bounds what a client asks for):
        the lease never outlasts the shorter of the two."""
        if 0 < session_timeout < self.session_timeout:
            self.session_timeout = session_timeout

    def registry_failed(self, detail: str) -> Change | None:
        """A registry write failed: another master took the leader epoch (fenced), or
        the ensemble did not take it. A leader that cannot keep its registry stops."""
        if self.standing is Standing.LEADING:
            return self._depose(f"registry write failed: {detail}")
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
