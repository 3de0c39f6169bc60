"""A master's candidacy on a real ZooKeeper ensemble, Mesos' way: the contender is an
ephemeral sequential znode `PATH/json.info_NNNNNNNNNN` holding its MasterInfo as JSON;
the lowest sequence number leads. The rules (who leads, the leader's lease) are the pure
state machine `corral.engines.master.leadership.Leadership`; `Contender` feeds it from
kazoo on a thread of its own and reports each change.

kazoo's traps, and how they are kept clear of: its listener and watch callbacks only
hand over to the contender's thread (a ZooKeeper call made inside them deadlocks); a LOST
session means our znode is gone, so a leader is deposed and a contender submits again.
"""
from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from typing import Any, Callable

from corral.engines.master.leadership import HEARTBEAT_FRACTION, Change, Leadership, Standing
from corral.net.zookeeper import (
    CONTENDER_PREFIX,
    DEFAULT_SESSION_TIMEOUT,
    ContenderInfo,
    Session,
    ZooKeeperUrl,
    read_leader,
)

log = logging.getLogger(__name__)

class _Wake(enum.Enum):
    """What other threads hand the contender's own thread."""

    CHILDREN_CHANGED = "children changed"
    LOOK = "look"  # something changed the leadership from outside (a registry write failed)
    STOP = "stop"


def zookeeper_client(url: ZooKeeperUrl, session_timeout: float) -> Any:
    """A kazoo client for `url` that reconnects for ever (a master waits out an outage
    of the ensemble) and retries a failed request a few times."""
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    return KazooClient(hosts=url.connect_string, timeout=session_timeout,
                       connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
                       command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0))


class Contender:
    """A master's candidacy. `on_change` is called on the contender's thread with each
    Change; `leadership.acts(clock())` is the gate the master checks before it acts.
    After DEPOSED the contender's thread ends; the master makes a new contender to join
    again.

    The contender's thread reads the path's children itself (a watch only wakes it),
    so that every observation carries the time its request was sent; a leader reads
    them every `HEARTBEAT_FRACTION` of the session timeout, which renews its lease and
    notices at once if its znode is gone. When the children change it reads the leading
    contender's MasterInfo, so a standby can name the leader (`leader_info`); a contender
    holding garbage is skipped (`corral.net.zookeeper.read_leader`)."""

    def __init__(self, url: ZooKeeperUrl, info: bytes, on_change: Callable[[Change], None], *,
                 session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.info = info
        self.clock = clock
        self.leadership = Leadership(session_timeout)
        #: the leading contender's MasterInfo, as last read (None: no contender)
        self.leader_info: ContenderInfo | None = None
        #: the children last read, and the contenders among them that hold garbage
        self._children: list[str] | None = None
        self._garbage: set[str] = set()
        self._on_change = on_change
        self._wakes: queue.SimpleQueue[_Wake | Session] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._reported = Standing.CONTENDING
        self.client = zookeeper_client(url, session_timeout)
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

    def registry_failed(self, detail: str) -> None:
        """A registry write failed (any thread): stop leading."""
        if self.leadership.registry_failed(detail) is not None:
            self._wakes.put(_Wake.LOOK)

    # -- kazoo's threads: hand over, never call ZooKeeper here -----------------------
    def _listener(self, state: str) -> None:
        self._wakes.put(Session(state.lower()))

    def _children_changed(self, _children: list[str]) -> bool:
        self._wakes.put(_Wake.CHILDREN_CHANGED)
        return not self._stopped.is_set()  # False ends the watch

    # -- the contender's thread -------------------------------------------------------
    def _run(self) -> None:
        from kazoo.recipe.watchers import ChildrenWatch

        self.client.start_async()
        look = True
        watching = False
        while not self._stopped.is_set():
            if self.client.connected:
                try:
                    if self.leadership.candidacy is None:
                        self._submit()
                        look = True
                    if not watching:
                        ChildrenWatch(self.client, self.url.path, self._children_changed)
                        watching = True
                    if look or self.leadership.standing is Standing.LEADING:
                        sent_at = self.clock()
                        children = self.client.get_children(self.url.path)
                        look = False
                        if self._children != children:
                            self.leader_info = read_leader(self.client, self.url.path, children, self._garbage)
                            self._children = children
                        self.leadership.observed(children, sent_at, self._garbage)
                except Exception as exc:  # a request failed: the session events say why
                    log.warning("ZooKeeper request to %s failed: %s", self.url.connect_string, exc)
            self.leadership.tick(self.clock())
            if self._report():
                return
            try:
                wake = self._wakes.get(timeout=self.leadership.session_timeout * HEARTBEAT_FRACTION)
            except queue.Empty:
                continue
            if wake is _Wake.STOP:
                return
            if wake is _Wake.CHILDREN_CHANGED:
                look = True
            elif isinstance(wake, Session):
                if wake is Session.CONNECTED:
                    self._negotiated()
                    look = True
                self.leadership.session_changed(wake, self.clock())

    def _negotiated(self) -> None:
        granted_ms = getattr(self.client, "_session_timeout", None)  # (kazoo keeps what the server granted here)
        if isinstance(granted_ms, (int, float)) and granted_ms > 0:
            self.leadership.negotiated(granted_ms / 1000.0)

    def _submit(self) -> None:
        self.client.ensure_path(self.url.path)
        created = self.client.create(f"{self.url.path}/{CONTENDER_PREFIX}", self.info, ephemeral=True, sequence=True)
        self.leadership.submitted(created.rsplit("/", 1)[1])
        log.info("contending for the leadership as %s", created)

    def _report(self) -> bool:
        """Report a change of standing; True when the contender is done (deposed)."""
        standing = self.leadership.standing
        if standing is self._reported:
            return False
        self._reported = standing
        if standing is Standing.DEPOSED:
            log.warning("no longer the leading master: %s", self.leadership.reason)
            self._on_change(Change.DEPOSED)
            return True
        log.info("elected the leading master (%s)", self.leadership.candidacy)
        self._on_change(Change.ELECTED)
        return False
