"""`StateStore`: a framework's crash-safe state, as JSON values under string keys. Several
writes made in one `transaction()` land together or not at all.

A scheduler keeps here what it must not forget across a restart (its framework id, what
it reserved and where, its plans' progress and the operator's overrides), writes it
before acting on it, and reads it back when it starts again.

Two implementations of the one interface: `SqliteStateStore`, in one SQLite file on the
scheduler's machine (WAL journal, synchronous=FULL: a write that returned survives
SIGKILL and power loss), and `corral.framework.zkstore.ZooKeeperStateStore`, in
ZooKeeper, where a scheduler started on another machine finds it (one instance at a
time, fenced). `open_state_store` picks one from a scheduler's flags.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

FRAMEWORK_ID_KEY = "framework_id"
#: the SQLite file's name in a scheduler's state directory
SQLITE_FILE = "state.sqlite"


class StateStoreError(RuntimeError):
    """Stored state that cannot be read or written; the message names where."""


class StateStore(ABC):
    """JSON values under string keys that survive the scheduler's process."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0

    @abstractmethod
    def get(self, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    def put(self, key: str, value: Any) -> None:
        """Store `value` (TypeError, before anything is written, if it is not JSON)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def items(self, prefix: str = "") -> dict[str, Any]:
        """Every key starting with `prefix`, with its value, in key order."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside happen together or not at all (nested transactions join the
        outer one); reads inside see them. One thread at a time."""
        with self._lock:
            if self._depth == 0:
                self._begin()
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._rollback()
                raise
            self._depth -= 1
            if self._depth == 0:
                self._commit()

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def clear(self) -> None:
        """Forget everything (after an uninstall)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def location(self, key: str) -> str:
        """Where `key` is kept, for a message about its value."""

    # the framework id, the one value every scheduler keeps
    def framework_id(self) -> str | None:
        return self.get(FRAMEWORK_ID_KEY)

    def save_framework_id(self, framework_id: str) -> None:
        self.put(FRAMEWORK_ID_KEY, framework_id)


def open_state_store(state_dir: str | os.PathLike[str] | None, zk: str | None = None, **zk_options: Any) -> StateStore:
    """The store a scheduler's flags name: in ZooKeeper at `zk` (a zk://HOST:PORT/PATH
    URL; `zk_options` go to `ZooKeeperStateStore`) when given, else in `state_dir`."""
    if zk:
        from corral.framework.zkstore import ZooKeeperStateStore

        return ZooKeeperStateStore(zk, **zk_options)
    if state_dir is None:
        raise ValueError("no state store: give a state directory or a zk:// URL")
    return SqliteStateStore(Path(state_dir) / SQLITE_FILE)


class SqliteStateStore(StateStore):
    """The state in the SQLite file `path` (made, with its folder, when missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else self._decode(key, row[0])

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, sort_keys=True)  # fails before anything is written
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, text))

    def delete(self, key: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM state WHERE key = ?", (key,))

    def items(self, prefix: str = "") -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM state WHERE substr(key, 1, ?) = ? ORDER BY key",
                                    (len(prefix), prefix)).fetchall()
        return {key: self._decode(key, value) for key, value in rows}

    def _decode(self, key: str, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StateStoreError(f"{self.location(key)} does not hold a JSON value: {exc}") from None

    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def _rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def _commit(self) -> None:
        self._db.execute("COMMIT")

    def clear(self) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM state")

    def location(self, key: str) -> str:
        return f"key {key!r} in {self.path}"

    def close(self) -> None:
        with self._lock:
            self._db.close()
