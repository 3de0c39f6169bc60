"""The master's SQLite registry: what a restarted master finds."""
from __future__ import annotations

import sqlite3

from corral.engines.master import (AgentRecordState, ForgetAgent, RecordAgent, RecordQuota, RecordWeight, RegistryState,
                                  apply_to_registry)
from corral.master.registry import Registry
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

ACTIONS = [
    RecordAgent("a1", pb.AgentInfo(hostname="h1"), AgentRecordState.ADMITTED, 1.0, "agent-1"),
    RecordAgent("a1", pb.AgentInfo(hostname="h1"), AgentRecordState.ADMITTED, 1.5),  # (the principal kept)
    RecordAgent("a2", pb.AgentInfo(hostname="h2"), AgentRecordState.ADMITTED, 1.0, "agent-2"),
    RecordAgent("a3", pb.AgentInfo(hostname="h3"), AgentRecordState.ADMITTED, 1.0, "agent-3"),
    RecordAgent("a2", None, AgentRecordState.UNREACHABLE, 5.0),
    ForgetAgent("a3"),
    RecordAgent("a3", None, AgentRecordState.GONE, 6.0),  # marked gone after being removed
]


def test_sqlite_registry_and_the_in_memory_one_agree_across_a_reopen(tmp_path) -> None:
    registry = Registry(tmp_path / "r.sqlite")
    memory = RegistryState()
    for action in ACTIONS:
        if isinstance(action, ForgetAgent):
            registry.forget_agent(action.agent_id)
        else:
            registry.record_agent(action.agent_id, action.info, action.record, action.since, action.principal)
        apply_to_registry(memory, action)
    registry.set_weight("db", 2.5)
    registry.set_quota("db", Resources.parse("cpus:4"))
    registry.close()
    reopened = Registry(tmp_path / "r.sqlite")
    state = reopened.agents()
    assert state == memory
    assert set(state.admitted) == {"a1"} and state.admitted["a1"].hostname == "h1"
    assert state.unreachable == {"a2": 5.0} and state.gone == {"a3"}
    # who admitted each agent that may come back (an unreachable one too)
    assert state.principals == {"a1": "agent-1", "a2": "agent-2"}
    assert reopened.weights() == {"db": 2.5} and reopened.quotas() == {"db": Resources.parse("cpus:4")}


def test_the_weight_and_quota_actions_leave_both_registries_alike(tmp_path) -> None:
    registry = Registry(tmp_path / "r.sqlite")
    memory = RegistryState()
    for action in ACTIONS + [RecordWeight("web", 3.0), RecordQuota("web", Resources.parse("mem:64")),
                             RecordWeight("db", 2.0), RecordQuota("db", Resources.parse("cpus:1")),
                             RecordWeight("db", 4.0), RecordQuota("db", None)]:
        if isinstance(action, ForgetAgent):  # (as the master daemon performs each)
            registry.forget_agent(action.agent_id)
        elif isinstance(action, RecordAgent):
            registry.record_agent(action.agent_id, action.info, action.record, action.since, action.principal)
        elif isinstance(action, RecordWeight):
            registry.set_weight(action.role, action.weight)
        else:
            registry.set_quota(action.role, action.quota)
        apply_to_registry(memory, action)
    registry.close()
    reopened = Registry(tmp_path / "r.sqlite")
    assert reopened.state() == memory
    assert memory.weights == {"web": 3.0, "db": 4.0} and memory.quotas == {"web": Resources.parse("mem:64")}


def test_a_registry_written_before_principals_were_kept_opens_and_keeps_them_from_then_on(tmp_path) -> None:
    path = tmp_path / "r.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE agents (id TEXT PRIMARY KEY, info BLOB NOT NULL, state TEXT NOT NULL, since REAL NOT NULL)")
    db.execute("INSERT INTO agents VALUES ('a1', ?, 'admitted', 0.0)", (pb.AgentInfo(hostname="h1").SerializeToString(),))
    db.commit()
    db.close()
    registry = Registry(path)
    assert set(registry.agents().admitted) == {"a1"} and registry.agents().principals == {}
    registry.record_agent("a1", None, AgentRecordState.UNREACHABLE, 3.0, "agent-1")
    registry.close()
    state = Registry(path).agents()
    assert state.unreachable == {"a1": 3.0} and state.principals == {"a1": "agent-1"}
