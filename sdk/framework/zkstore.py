"""`ZooKeeperStateStore`: a framework's state (the `corral.framework.statestore.StateStore`
interface) in ZooKeeper, so that a scheduler started again on another machine carries on
from it.

Layout under the zk:// URL's PATH:
  PATH/lock        kazoo's lock recipe: ephemeral sequential znodes, the lowest holds the
                   store; each holds its scheduler's identity (hostname, pid) as JSON
  PATH/epoch       its version is the fencing token: each instance that takes the lock
                   bumps it
  PATH/state/KEY   one znode per key (the key percent-encoded): its JSON value, UTF-8

One instance at a time. Opening the store waits up to `lock_timeout` for the lock, as
dcos-commons' schedulers did (a SIGKILLed instance holds it until its ZooKeeper session
expires), then fails with `StoreLocked` naming the holder. The holder bumps the epoch and
writes only in ZooKeeper transactions that check both its own lock znode (so its session
still lives) and the epoch's version: an instance that lost its session, and perhaps the
lock to another (a paused or cut-off process), writes nothing; its writes fail with
`StoreFenced`. The holder is the only writer, so it keeps the state in memory too and
reads ZooKeeper only when it opens the store.

`on_lost(reason)` is called once, on a thread of its own, when the instance can no
longer write: its session expired, a write was fenced, or a write could not be made
within `write_timeout`. Its memory may then be ahead of ZooKeeper, so a scheduler should
stop at once and let a new instance start from what ZooKeeper holds.

A znode under PATH/state that holds no JSON value in UTF-8 (or whose name this store
never writes) fails the opening with `StateStoreError` naming it: a scheduler refuses to
start from state it cannot read rather than forget what the znode held.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any, Callable
from urllib.parse import quote, unquote

from corral.framework.statestore import StateStore, StateStoreError
from corral.net.zookeeper import DEFAULT_SESSION_TIMEOUT, ZooKeeperUrl, kazoo_client, parse_zk_url

log = logging.getLogger(__name__)

#: how long opening the store waits for another instance's lock (dcos-commons' schedulers
#: tried for about as long before they exited to be restarted)
LOCK_TIMEOUT = 30.0
#: how long a write may wait for the ensemble (through a dropped connection) before the
#: instance gives the store up
WRITE_TIMEOUT = 10.0


class StoreLocked(StateStoreError):
    """Another scheduler instance holds the store's lock."""


class StoreFenced(StateStoreError):
    """This instance no longer holds the store: nothing was written."""


def znode_name(key: str) -> str:
    """The child of PATH/state that holds `key` (percent-encoded; ValueError for "")."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid state key {key!r}: a non-empty string is needed")
    return quote(key, safe="").replace(".", "%2E")


class ZooKeeperStateStore(StateStore):
    """The state under `url` (zk://HOST:PORT[,...]/PATH). See the module docstring."""

    def __init__(self, url: str | ZooKeeperUrl, *, session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 lock_timeout: float = LOCK_TIMEOUT, write_timeout: float = WRITE_TIMEOUT,
                 on_lost: Callable[[str], None] | None = None) -> None:
        from kazoo.retry import KazooRetry

        super().__init__()
        self.url = parse_zk_url(url) if isinstance(url, str) else url
        root = self.url.path
        self.lock_path, self.epoch_path, self.state_path = f"{root}/lock", f"{root}/epoch", f"{root}/state"
        self.write_timeout = write_timeout
        self._on_lost = on_lost
        #: why this instance can no longer write (None while it can)
        self.lost: str | None = None
        self._lost_lock = threading.Lock()
        self._closed = False
        #: key -> its JSON text, as ZooKeeper holds it
        self._values: dict[str, str] = {}
        #: the open transaction's writes: key -> JSON text, None to delete
        self._pending: dict[str, str | None] | None = None
        self._identity = json.dumps({"hostname": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
        # (credentials in the URL: digest authentication, znodes anyone may read and only
        # this user may change, as the masters' election znodes)
        self.client = kazoo_client(self.url, session_timeout,
                                   connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0))
        try:
            self.client.start(timeout=max(lock_timeout, session_timeout))
        except Exception as exc:
            self.client.close()
            raise StateStoreError(f"cannot reach ZooKeeper at {self.url.connect_string} for {self.url}: "
                                  f"{exc}") from None
        self.client.add_listener(self._session_changed)
        try:
            self._take_lock(lock_timeout)
            self._load()
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------
    def _take_lock(self, timeout: float) -> None:
        from kazoo.exceptions import LockTimeout, NodeExistsError

        self._mutex = self.client.Lock(self.lock_path, self._identity)
        try:
            held = self._mutex.acquire(timeout=timeout)
        except LockTimeout:
            held = False
        if not held:
            raise StoreLocked(f"another scheduler instance holds {self.lock_path} ({self._holder()}); waited "
                              f"{timeout:g}s for it. Stop that instance, or if it was killed, start again once its "
                              "ZooKeeper session has expired")
        self._lock_node = f"{self.lock_path}/{self._mutex.node}"
        self.client.ensure_path(self.state_path)
        try:
            self.client.create(self.epoch_path, self._identity.encode())
        except NodeExistsError:
            pass
        self.epoch = self.client.set(self.epoch_path, self._identity.encode()).version
        log.info("holding %s (epoch %d)", self.lock_path, self.epoch)

    def _holder(self) -> str:
        try:
            contenders = self._mutex.contenders()
        except Exception as exc:  # the message is what matters; say why the holder is unknown
            return f"holder unknown: {exc}"
        return f"held by {contenders[0]}" if contenders else "its holder just let it go"

    def _load(self) -> None:
        names = self.client.get_children(self.state_path)
        reads = {name: self.client.get_async(f"{self.state_path}/{name}") for name in sorted(names)}
        for name, result in reads.items():
            where = f"{self.state_path}/{name}"
            key = unquote(name)
            if not key or znode_name(key) != name:
                raise StateStoreError(f"znode {where} is not a key of this store (keys are percent-encoded): "
                                      "remove it, then start again")
            data, _stat = result.get(timeout=self.write_timeout)
            try:
                text = data.decode("utf-8")
                json.loads(text)
            except ValueError as exc:  # UnicodeDecodeError is a ValueError
                raise StateStoreError(f"znode {where} (state key {key!r}) does not hold a JSON value: {exc}. "
                                      "Fix or remove it, then start again") from None
            self._values[key] = text

    # -- the interface ---------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            text = self._current(key)
        return default if text is None else json.loads(text)

    def _current(self, key: str) -> str | None:
        if self._pending is not None and key in self._pending:
            return self._pending[key]
        return self._values.get(key)

    def items(self, prefix: str = "") -> dict[str, Any]:
        with self._lock:
            keys = sorted(k for k in {*self._values, *(self._pending or ())} if k.startswith(prefix))
            texts = [(key, self._current(key)) for key in keys]
        return {key: json.loads(text) for key, text in texts if text is not None}

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, sort_keys=True)  # fails before anything is written
        znode_name(key)
        with self.transaction():
            assert self._pending is not None
            self._pending[key] = text

    def delete(self, key: str) -> None:
        with self.transaction():
            assert self._pending is not None
            self._pending[key] = None

    def clear(self) -> None:
        with self.transaction():
            assert self._pending is not None
            self._pending.update(dict.fromkeys(self._values))

    def _begin(self) -> None:
        self._pending = {}

    def _rollback(self) -> None:
        self._pending = None

    def _commit(self) -> None:
        pending, self._pending = self._pending or {}, None
        self._write(pending)

    def location(self, key: str) -> str:
        return f"znode {self.state_path}/{znode_name(key)}"

    def close(self) -> None:
        """Let the lock go (a next instance starts at once) and disconnect."""
        with self._lost_lock:
            if self._closed:
                return
            self._closed = True
        self.client.remove_listener(self._session_changed)
        mutex = getattr(self, "_mutex", None)
        if mutex is not None and mutex.is_acquired and self.lost is None:
            try:
                mutex.release()
            except Exception as exc:  # its session's end releases it anyway
                log.warning("could not release %s: %s", self.lock_path, exc)
        self.client.stop()
        self.client.close()

    # -- writing ---------------------------------------------------------------------------
    def _write(self, pending: dict[str, str | None]) -> None:
        """Write `pending` in one ZooKeeper transaction, fenced; see the module docstring."""
        from kazoo.exceptions import (
            BadVersionError,
            ConnectionLoss,
            NodeExistsError,
            NoNodeError,
            RolledBackError,
            SessionExpiredError,
        )
        from kazoo.handlers.threading import KazooTimeoutError

        changes = {key: text for key, text in pending.items() if text != self._values.get(key)}
        if not changes:
            return
        if self.lost is not None:
            raise StoreFenced(f"nothing was written to {self.state_path}: {self.lost}")
        present = {key for key in changes if key in self._values}
        deadline = time.monotonic() + self.write_timeout
        reread = False
        while True:
            transaction = self.client.transaction()
            transaction.check(self._lock_node, 0)
            transaction.check(self.epoch_path, self.epoch)
            for key, text in changes.items():
                path = f"{self.state_path}/{znode_name(key)}"
                if text is None:
                    if key in present:
                        transaction.delete(path)
                elif key in present:
                    transaction.set_data(path, text.encode())
                else:
                    transaction.create(path, text.encode())
            try:
                results = transaction.commit_async().get(timeout=max(0.01, deadline - time.monotonic()))
            except SessionExpiredError:
                raise self._fenced(f"its ZooKeeper session expired, so it no longer holds {self.lock_path}") from None
            except (ConnectionLoss, KazooTimeoutError) as exc:
                # the transaction may or may not have been applied: look, then go on
                written = self._written(changes, deadline, exc)
                if written is None:
                    return self._applied(changes)
                present = written
                continue
            if not any(isinstance(r, Exception) for r in results):
                return self._applied(changes)
            if isinstance(results[0], (NoNodeError, BadVersionError)):
                raise self._fenced(f"it no longer holds {self.lock_path} (its session ended, or its lock znode "
                                   "was removed)")
            if isinstance(results[1], (NoNodeError, BadVersionError)):
                raise self._fenced(f"another scheduler instance took {self.epoch_path}")
            failure = next(r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError))
            if reread or not isinstance(failure, (NodeExistsError, NoNodeError)):
                raise self._give_up(f"ZooKeeper refused a write under {self.state_path}: {failure!r}")
            reread = True  # a znode someone added or removed by hand: look, then go on
            present = self._existing(changes)

    def _applied(self, changes: dict[str, str | None]) -> None:
        for key, text in changes.items():
            if text is None:
                self._values.pop(key, None)
            else:
                self._values[key] = text

    def _written(self, changes: dict[str, str | None], deadline: float, cause: Exception) -> set[str] | None:
        """After a lost reply: None when ZooKeeper holds `changes` already (the
        transaction was applied), else which of their znodes exist (to try again)."""
        from kazoo.exceptions import ConnectionLoss, NoNodeError
        from kazoo.handlers.threading import KazooTimeoutError

        while time.monotonic() < deadline:
            reads = {key: self.client.get_async(f"{self.state_path}/{znode_name(key)}") for key in changes}
            held: dict[str, str | None] = {}
            try:
                for key, result in reads.items():
                    try:
                        data, _stat = result.get(timeout=max(0.01, deadline - time.monotonic()))
                        held[key] = data.decode("utf-8", errors="replace")
                    except NoNodeError:
                        held[key] = None
            except (ConnectionLoss, KazooTimeoutError):
                time.sleep(0.1)
                continue
            if held == changes:
                return None
            return {key for key, text in held.items() if text is not None}
        raise self._give_up(f"a write to {self.state_path} could not be made within {self.write_timeout:g}s "
                            f"({cause!r})")

    def _existing(self, changes: dict[str, str | None]) -> set[str]:
        return {key for key in changes if self.client.exists(f"{self.state_path}/{znode_name(key)}") is not None}

    def _fenced(self, reason: str) -> StoreFenced:
        why = f"this scheduler instance can no longer write the store: {reason}"
        self._lose(why)
        return StoreFenced(f"nothing was written to {self.state_path}: {why}")

    def _give_up(self, reason: str) -> StateStoreError:
        self._lose(reason)
        return StateStoreError(reason)

    def _lose(self, reason: str) -> None:
        with self._lost_lock:  # not self._lock: kazoo's thread calls this while a writer holds that
            if self.lost is not None or self._closed:
                return
            self.lost = reason
        log.error("%s", reason)
        if self._on_lost is not None:
            threading.Thread(target=self._on_lost, args=(reason,), name="statestore-lost", daemon=True).start()

    def _session_changed(self, state: str) -> None:
        """kazoo's listener: no ZooKeeper calls in here (kazoo would deadlock)."""
        from kazoo.client import KazooState

        if state == KazooState.LOST:
            self._lose(f"this scheduler instance can no longer write the store: its ZooKeeper session expired, "
                       f"so it no longer holds {self.lock_path}")
        elif state == KazooState.SUSPENDED:
            log.warning("the connection to ZooKeeper at %s dropped; writes wait for it", self.url.connect_string)
