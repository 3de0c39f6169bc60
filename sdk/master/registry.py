"""The master's registry in an embedded SQLite file under --work-dir (used when there is
no ZooKeeper): what must survive a master restart that agents and frameworks cannot
tell it again: the admitted agents (and which are unreachable, and since when, or
marked gone by an operator, and the principal each was admitted by), role weights and
quota limits, and the frameworks that subscribed (for their failover timeouts).

Every change is committed before the caller applies it, so a crash never leaves the
master running with a setting it would forget. `registry_performers` is how a master
daemon performs its engine's registry actions on a `RegistryStore`: this one, or the
registry in ZooKeeper (`corral.master.zk_registry`), which stages them until the daemon
commits them, once per turn of its I/O loop.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from corral.engines.master import (
    AgentRecordState,
    ForgetAgent,
    ForgetFramework,
    RecordAgent,
    RecordFramework,
    RecordQuota,
    RecordWeight,
    RegistryState,
)
from corral.runtime.actions import Performer
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, info BLOB NOT NULL, state TEXT NOT NULL, since REAL NOT NULL,
                                   principal TEXT);
CREATE TABLE IF NOT EXISTS weights (role TEXT PRIMARY KEY, weight REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quotas (role TEXT PRIMARY KEY, resources TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frameworks (id TEXT PRIMARY KEY, info BLOB NOT NULL);
"""


class RegistryStore(Protocol):
    """Where a master keeps its registry (SQLite, or ZooKeeper with several masters)."""

    def state(self) -> RegistryState: ...

    def record_agent(self, agent_id: str, info: pb.AgentInfo | None, record: AgentRecordState,
                     since: float, principal: str | None = None) -> None: ...

    def forget_agent(self, agent_id: str) -> None: ...

    def record_framework(self, framework_id: str, info: pb.FrameworkInfo) -> None: ...

    def forget_framework(self, framework_id: str) -> None: ...

    def set_weight(self, role: str, weight: float) -> None: ...

    def set_quota(self, role: str, quota: Resources | None) -> None: ...

    def close(self) -> None: ...


def registry_performers(store: RegistryStore) -> dict[type, Performer]:
    """How each registry action of the master engine is carried out on `store`."""
    return {
        RecordAgent: lambda a: store.record_agent(a.agent_id, a.info, a.record, a.since, a.principal),
        ForgetAgent: lambda a: store.forget_agent(a.agent_id),
        RecordWeight: lambda a: store.set_weight(a.role, a.weight),
        RecordQuota: lambda a: store.set_quota(a.role, a.quota),
        RecordFramework: lambda a: store.record_framework(a.framework_id, a.info),
        ForgetFramework: lambda a: store.forget_framework(a.framework_id),
    }


class Registry:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(agents)")}
        if "principal" not in columns:  # a registry written before principals were kept
            self._db.execute("ALTER TABLE agents ADD COLUMN principal TEXT")

    def state(self) -> RegistryState:
        """Everything the registry keeps (what a starting master engine is given)."""
        state = self.agents()
        state.weights.update(self.weights())
        state.quotas.update(self.quotas())
        state.frameworks.update(self.frameworks())
        return state

    def agents(self) -> RegistryState:
        state = RegistryState()
        with self._lock:
            rows = list(self._db.execute("SELECT id, info, state, since, principal FROM agents"))
        for agent_id, blob, kind, since, principal in rows:
            record = AgentRecordState(kind)
            if principal is not None and record is not AgentRecordState.GONE:
                state.principals[agent_id] = principal
            if record is AgentRecordState.ADMITTED:
                state.admitted[agent_id] = pb.AgentInfo.FromString(blob)
            elif record is AgentRecordState.UNREACHABLE:
                state.unreachable[agent_id] = since
            else:
                state.gone.add(agent_id)
        return state

    def record_agent(self, agent_id: str, info: pb.AgentInfo | None, record: AgentRecordState, since: float,
                     principal: str | None = None) -> None:
        """Write an agent's registry entry; `info` None keeps the one stored, `principal`
        None the principal stored."""
        with self._lock:
            self._db.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "info = CASE WHEN ? THEN excluded.info ELSE agents.info END, state = excluded.state, "
                "since = excluded.since, principal = COALESCE(excluded.principal, agents.principal)",
                (agent_id, b"" if info is None else info.SerializeToString(), record.value, since, principal,
                 info is not None))

    def forget_agent(self, agent_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))

    def frameworks(self) -> dict[str, pb.FrameworkInfo]:
        with self._lock:
            rows = list(self._db.execute("SELECT id, info FROM frameworks ORDER BY id"))
        return {framework_id: pb.FrameworkInfo.FromString(blob) for framework_id, blob in rows}

    def record_framework(self, framework_id: str, info: pb.FrameworkInfo) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO frameworks VALUES (?, ?)",
                             (framework_id, info.SerializeToString(deterministic=True)))

    def forget_framework(self, framework_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM frameworks WHERE id = ?", (framework_id,))

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
