"""The master's registry in an embedded SQLite file under --work-dir (used when there is
no ZooKeeper): what must survive a master restart that agents and frameworks cannot
tell it again. Today: role weights and quota limits.

Every change is committed before the caller applies it, so a crash never leaves the
master running with a setting it would forget.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from corral.resources import Resources

SCHEMA = """
CREATE TABLE IF NOT EXISTS weights (role TEXT PRIMARY KEY, weight REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quotas (role TEXT PRIMARY KEY, resources TEXT NOT NULL);
"""


class Registry:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def weights(self) -> dict[str, float]:
        with self._lock:
            return dict(self._db.execute("SELECT role, weight FROM weights ORDER BY role"))

    def set_weight(self, role: str, weight: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO weights VALUES (?, ?)", (role, weight))

    def quotas(self) -> dict[str, Resources]:
        with self._lock:
            rows = list(self._db.execute("SELECT role, resources FROM quotas ORDER BY role"))
        return {role: Resources.parse(text) for role, text in rows}

    def set_quota(self, role: str, quota: Resources | None) -> None:
        with self._lock:
            if quota is None:
                self._db.execute("DELETE FROM quotas WHERE role = ?", (role,))
            else:
                self._db.execute("INSERT OR REPLACE INTO quotas VALUES (?, ?)", (role, quota.to_text()))

    def close(self) -> None:
        with self._lock:
            self._db.close()
