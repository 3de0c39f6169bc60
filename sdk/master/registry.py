"""The master's registry in an embedded SQLite file under --work-dir (used when there is
no ZooKeeper): what must survive a master restart that agents and frameworks cannot
tell it again: the admitted agents (and which are unreachable, and since when, or
marked gone by an operator), role weights and quota limits.

Every change is committed before the caller applies it, so a crash never leaves the
master running with a setting it would forget.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from corral.engines.master import AgentRecordState, RegistryState
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, info BLOB NOT NULL, state TEXT NOT NULL, since REAL NOT NULL);
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

    def state(self) -> RegistryState:
        """Everything the registry keeps (what a starting master engine is given)."""
        state = self.agents()
        state.weights.update(self.weights())
        state.quotas.update(self.quotas())
        return state

    def agents(self) -> RegistryState:
        state = RegistryState()
        with self._lock:
            rows = list(self._db.execute("SELECT id, info, state, since FROM agents"))
        for agent_id, blob, kind, since in rows:
            record = AgentRecordState(kind)
            if record is AgentRecordState.ADMITTED:
                state.admitted[agent_id] = pb.AgentInfo.FromString(blob)
            elif record is AgentRecordState.UNREACHABLE:
                state.unreachable[agent_id] = since
            else:
                state.gone.add(agent_id)
        return state

    def record_agent(self, agent_id: str, info: pb.AgentInfo | None, record: AgentRecordState, since: float) -> None:
        """Write an agent's registry entry; `info` None keeps the one stored."""
        with self._lock:
            if info is None:
                self._db.execute(
                    "INSERT INTO agents VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, since = excluded.since",
                    (agent_id, b"", record.value, since))
            else:
                self._db.execute("INSERT OR REPLACE INTO agents VALUES (?, ?, ?, ?)",
                                 (agent_id, info.SerializeToString(), record.value, since))

    def forget_agent(self, agent_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))

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
