"""`StateStore`: a framework's crash-safe state, as JSON values under string keys, in one
SQLite file (WAL journal, synchronous=FULL: a write that returned survives SIGKILL and
power loss). Several writes made in one `transaction()` land together or not at all.

A scheduler keeps here what it must not forget across a restart (its framework id, what
it reserved and where, its plans' progress and the operator's overrides), writes it
before acting on it, and reads it back when it starts again.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

FRAMEWORK_ID_KEY = "framework_id"


class StateStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._depth = 0

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, sort_keys=True)  # fails before anything is written
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, text))

    def delete(self, key: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM state WHERE key = ?", (key,))

    def items(self, prefix: str = "") -> dict[str, Any]:
        """Every key starting with `prefix`, with its value, in key order."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM state WHERE substr(key, 1, ?) = ? ORDER BY key",
                                    (len(prefix), prefix)).fetchall()
        return {key: json.loads(value) for key, value in rows}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside happen together (nested transactions join the outer one)."""
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    # the framework id, the one value every scheduler keeps
    def framework_id(self) -> str | None:
        return self.get(FRAMEWORK_ID_KEY)

    def save_framework_id(self, framework_id: str) -> None:
        self.put(FRAMEWORK_ID_KEY, framework_id)

    def clear(self) -> None:
        """Forget everything (after an uninstall)."""
        with self.transaction():
            self._db.execute("DELETE FROM state")

    def close(self) -> None:
        with self._lock:
            self._db.close()
