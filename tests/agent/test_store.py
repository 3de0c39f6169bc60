"""The simulator keeps an agent's checkpoints in a `MemoryStore` behind the interface
of the real files (`FileStore`): the same operations give the same results in both, so
the one `Checkpointer` writes and recovers the same state from either."""
from __future__ import annotations

from pathlib import Path

import pytest

from corral.agent.checkpoint import Checkpointer
from corral.agent.store import FileStore, Store
from corral.engines.agent import JournalKind, JournalRecord
from corral.protos import corral_pb2 as pb
from corral.testing.sim.checkpoints import MemoryStore


@pytest.fixture(params=["files", "memory"])
def store(request) -> Store:
    return FileStore() if request.param == "files" else MemoryStore()


def test_files_and_directories(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "meta"
    store.write(root / "a" / "b" / "f", b"one")
    store.write(root / "a" / "b" / "f", b"two")
    store.append(root / "a" / "c" / "j", b"x")
    store.append(root / "a" / "c" / "j", b"yz")
    assert store.read(root / "a" / "b" / "f") == b"two"
    assert store.read(root / "a" / "c" / "j") == b"xyz"
    assert store.exists(root / "a") and store.exists(root / "a" / "b" / "f") and not store.exists(root / "z")
    assert store.subdirs(root / "a") == [root / "a" / "b", root / "a" / "c"]
    assert store.subdirs(root / "a" / "b" / "f") == [] and store.subdirs(root / "z") == []
    with pytest.raises(FileNotFoundError):
        store.read(root / "a" / "missing")
    store.truncate(root / "a" / "c" / "j", 1)
    assert store.read(root / "a" / "c" / "j") == b"x"
    store.remove_tree(root / "a" / "c")
    with pytest.raises(OSError):
        store.remove_dir(root / "a")  # not empty
    store.remove_tree(root / "a" / "b")
    store.remove_tree(root / "a" / "b")  # (gone already: nothing happens)
    assert not store.exists(root / "a" / "b" / "f") and store.subdirs(root / "a") == []
    store.append(root / "a" / "c" / "d" / "j", b"")
    store.remove_tree(root / "a" / "c" / "d")
    store.remove_dir(root / "a" / "c")  # empty now: its file and directory are gone
    with pytest.raises(OSError):
        store.remove_dir(root / "a" / "c")  # not there any more
    assert store.subdirs(root / "a") == []


def test_a_checkpointer_recovers_the_same_state_from_either(store: Store, tmp_path: Path) -> None:
    c = Checkpointer(tmp_path, store)
    agent = pb.AgentInfo(hostname="h")
    agent.id.value = "agent-1"
    c.write_agent(agent)
    framework = pb.FrameworkInfo(user="u", name="fw", checkpoint=True)
    framework.id.value = "fw"
    c.write_framework(framework)
    executor = pb.ExecutorInfo()
    executor.executor_id.value = "e"
    executor.command.value = "true"
    for container in ("c2", "c1"):
        c.write_executor("fw", executor, container, True, f"tcp://{container}")
        for tid in ("t2", "t1"):
            task = pb.TaskInfo(name=tid)
            task.task_id.value = tid
            task.agent_id.value = "agent-1"
            c.write_task("fw", "e", container, task)
            c.append("fw", "e", container, tid, JournalRecord(JournalKind.ACK, tid.encode()))
    c.discard_run("fw", "e", "c2")
    state = c.read()
    assert [(r.container_id, r.transport, [t.info.task_id.value for t in r.tasks]) for r in state.runs] == [
        ("c1", "tcp://c1", ["t1", "t2"])]
    assert [[rec.uuid for rec in t.journal] for t in state.runs[0].tasks] == [[b"t1"], [b"t2"]]
    c.discard_run("fw", "e", "c1")  # the last run: its executor's directory goes too
    assert c.read().runs == [] and store.subdirs(c.root / "frameworks" / "fw" / "executors") == []
    c.discard()
    assert not c.exists()
