"""corral.agent.checkpoint: the layout round-trips, journals replay in order, a torn
last journal record is truncated (a crash mid-append), and corrupt files raise a
CheckpointError that names the file."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from corral.agent.checkpoint import CheckpointError, Checkpointer, ProcessStamp, encode_record, process_stamp, read_journal
from corral.engines.agent import JournalKind, JournalRecord
from corral.protos import corral_pb2 as pb

FID, EID, CID = "fw/1", "..", "c.1"  # ids that are not safe path components as they are


def update(state: int, uuid: bytes) -> pb.StatusUpdate:
    u = pb.StatusUpdate(timestamp=1.0, uuid=uuid)
    u.framework_id.value = FID
    u.status.task_id.value = "t1"
    u.status.state = state
    u.status.uuid = uuid
    return u


def populated(tmp_path: Path) -> Checkpointer:
    c = Checkpointer(tmp_path)
    agent = pb.AgentInfo(hostname="h")
    agent.id.value = "agent-1"
    c.write_agent(agent)
    c.write_boot_id("boot-1")
    framework = pb.FrameworkInfo(user="u", name="fw", checkpoint=True)
    framework.id.value = FID
    c.write_framework(framework)
    executor = pb.ExecutorInfo()
    executor.executor_id.value = EID
    executor.command.value = "python3"
    c.write_executor(FID, executor, CID, True, "")
    c.write_executor(FID, executor, CID, True, "tcp://127.0.0.1:4000")  # the transport, once registered
    c.write_pid(FID, EID, CID, ProcessStamp(1234, 5678))
    task = pb.TaskInfo(name="t1")
    task.task_id.value = "t1"
    task.agent_id.value = "agent-1"
    c.write_task(FID, EID, CID, task)
    c.append(FID, EID, CID, "t1", JournalRecord(JournalKind.UPDATE, b"u1", update(pb.TASK_RUNNING, b"u1")))
    c.append(FID, EID, CID, "t1", JournalRecord(JournalKind.ACK, b"u1"))
    c.append(FID, EID, CID, "t1", JournalRecord(JournalKind.UPDATE, b"u2", update(pb.TASK_FINISHED, b"u2")))
    return c


def journal_path(c: Checkpointer) -> Path:
    (path,) = c.root.rglob("updates")
    return path


def test_round_trip(tmp_path: Path) -> None:
    c = populated(tmp_path)
    assert c.exists() and c.read_boot_id() == "boot-1"
    state = c.read()
    assert state.agent.id.value == "agent-1"
    assert list(state.frameworks) == [FID]
    (run,) = state.runs
    assert (run.framework_id, run.info.executor_id.value, run.container_id) == (FID, EID, CID)
    assert (run.command_executor, run.transport, run.pid, run.start_time, run.exited) == (
        True, "tcp://127.0.0.1:4000", 1234, 5678, False)
    (task,) = run.tasks
    assert [(r.kind, r.uuid) for r in task.journal] == [
        (JournalKind.UPDATE, b"u1"), (JournalKind.ACK, b"u1"), (JournalKind.UPDATE, b"u2")]
    assert task.journal[2].update is not None and task.journal[2].update.status.state == pb.TASK_FINISHED
    c.mark_exited(FID, EID, CID)
    assert c.read().runs[0].exited
    # ids never escape their directory
    assert all(p.resolve().is_relative_to(c.root.resolve()) for p in c.root.rglob("*"))
    assert not list(c.root.rglob(".*.tmp"))


def test_torn_last_record_is_truncated_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = populated(tmp_path)
    path = journal_path(c)
    good = path.stat().st_size
    record = encode_record(JournalRecord(JournalKind.UPDATE, b"u3", update(pb.TASK_FAILED, b"u3")))
    for torn in (record[:3], record[:12], record[:-1]):  # header cut, body cut, last byte missing
        with open(path, "ab") as f:
            f.write(torn)
        with caplog.at_level(logging.WARNING):
            assert [r.uuid for r in read_journal(path)] == [b"u1", b"u1", b"u2"]
        assert "torn" in caplog.text and str(path) in caplog.text
        assert path.stat().st_size == good  # truncated: the next append starts clean
    c.append(FID, EID, CID, "t1", JournalRecord(JournalKind.ACK, b"u2"))
    assert [r.kind for r in read_journal(path)][-1] is JournalKind.ACK


def test_garbage_in_the_last_record_is_a_torn_tail_too(tmp_path: Path) -> None:
    c = populated(tmp_path)
    path = journal_path(c)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last record's body no longer matches its checksum
    path.write_bytes(bytes(data))
    assert [r.uuid for r in read_journal(path)] == [b"u1", b"u1"]


def test_corrupt_record_before_the_end_names_the_journal(tmp_path: Path) -> None:
    c = populated(tmp_path)
    path = journal_path(c)
    data = bytearray(path.read_bytes())
    data[12] ^= 0xFF  # inside the first record's body
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"corrupt checkpoint {path}.*byte 0"):
        c.read()


@pytest.mark.parametrize("name", ["agent.pb", "framework.pb", "task.pb", "run.json", "pid"])
def test_corrupt_file_names_the_file(tmp_path: Path, name: str) -> None:
    c = populated(tmp_path)
    (path,) = c.root.rglob(name)
    path.write_bytes(b"\xff\xfe not what it should be")
    with pytest.raises(CheckpointError) as raised:
        c.read()
    assert str(path) in str(raised.value)


def test_truncated_protobuf_file_is_an_error_not_a_default(tmp_path: Path) -> None:
    c = populated(tmp_path)
    path = c.root / "agent.pb"
    path.write_bytes(b"")  # parses as an AgentInfo with its required fields missing
    with pytest.raises(CheckpointError, match=str(path)):
        c.read()


def test_discard(tmp_path: Path) -> None:
    c = populated(tmp_path)
    c.discard_framework(FID)
    assert c.read().runs == []
    c.discard()
    assert not c.exists() and not c.root.exists()


def test_discard_run_removes_one_run_and_its_executor_directory_once_empty(tmp_path: Path) -> None:
    c = populated(tmp_path)
    executor = pb.ExecutorInfo()
    executor.executor_id.value = EID
    executor.command.value = "python3"
    c.write_executor(FID, executor, "second-run", True, "")
    c.discard_run(FID, EID, CID)
    assert [run.container_id for run in c.read().runs] == ["second-run"]
    c.discard_run(FID, EID, "second-run")
    assert c.read().runs == []
    assert not (c.root / "frameworks" / FID / "executors").exists() or not any(
        (c.root / "frameworks" / FID / "executors").iterdir())
    assert c.read().frameworks.keys() == {FID}  # the framework's own checkpoint stays
    c.discard_run(FID, EID, CID)  # gone already: nothing to do


def test_process_stamp_tells_this_process_from_a_reused_pid() -> None:
    stamp = process_stamp(os.getpid())
    assert stamp is not None and stamp.pid == os.getpid()
    assert process_stamp(os.getpid()) == stamp
    assert ProcessStamp(os.getpid(), stamp.start_time + 1) != stamp
