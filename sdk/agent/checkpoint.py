"""Agent checkpoints: the files a restarted agent recovers from (pure file I/O).

Owns the on-disk layout under `<work_dir>/meta` and its crash safety; it knows nothing
of protocols. The agent engine decides *what* to persist and emits checkpoint actions
(`corral.engines.agent.CheckpointFramework`, `JournalAppend`, ...); the daemon performs
each one here synchronously, in the order emitted, before it performs the engine's
following actions. So an update is in its journal before the `Send` that acks it to
the executor or forwards it to the master is performed, and an ack is journalled before
the next update of the stream is forwarded ("journal before ack").

Layout (ids are percent-encoded so any id is one safe path component)::

    meta/boot_id                                  boot id of the machine at the last start
    meta/agent.pb                                 AgentInfo (with the agent id)
    meta/frameworks/<fid>/framework.pb            FrameworkInfo
    meta/frameworks/<fid>/executors/<eid>/runs/<container_id>/
        executor.pb                               ExecutorInfo
        run.json                                  command executor?, executor transport
        pid                                       "<pid> <start time in clock ticks>"
        exited                                    marker: the run has ended
        tasks/<tid>/task.pb                       TaskInfo
        tasks/<tid>/updates                       the task's update journal

A run's directory goes (`discard_run`) once its executor has ended and every update of
its tasks was acknowledged; a framework's (`discard_framework`) when it is shut down.

Files are written through a `corral.agent.store.Store`: the real files, crash-safely
(`FileStore`: a whole file by temporary file, fsync and rename; appends fsynced), or,
in the simulator, memory. Journals are append-only; each record
is `kind (1 byte) | length (4 bytes, big-endian) | crc32 of the body (4 bytes) | body`,
the body being a serialised `StatusUpdate` (kind UPDATE) or the acknowledged uuid (kind
ACK); each append is fsynced. A record cut short or failing its checksum at the end of
a journal is what a crash in the middle of an append leaves: it is truncated away with a
warning. Anything else that does not parse raises `CheckpointError` naming the file.
"""
from __future__ import annotations

import functools
import json
import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from google.protobuf.message import DecodeError, Message

from corral.agent.store import FILES, Store
from corral.engines.agent import (
    CheckpointAgent, CheckpointExecutor, CheckpointExecutorExited, CheckpointFramework, CheckpointTask,
    DiscardFramework, DiscardRun, JournalAppend, JournalKind, JournalRecord, RecoveredRun, RecoveredState,
    RecoveredTask,
)
from corral.net.protocol import parse_message
from corral.runtime.actions import Performer
from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)

#: where the machine's boot id is read from (a new one means the machine rebooted)
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")

_HEADER = struct.Struct(">BII")


class CheckpointError(RuntimeError):
    """A checkpoint file is corrupt or unreadable; the message names the file."""


@dataclass(frozen=True)
class ProcessStamp:
    """A process identity that survives pid reuse: its pid and its start time."""

    pid: int
    start_time: int


def read_boot_id(path: Path = BOOT_ID_PATH, store: Store = FILES) -> str:
    try:
        return store.read(path).decode().strip()
    except OSError as exc:
        raise CheckpointError(f"cannot read the boot id from {path}: {exc}") from exc


def process_stamp(pid: int) -> ProcessStamp | None:
    """The live process `pid` as a `ProcessStamp`; None when there is no such process
    (or it is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the command name, which is in parentheses and may contain anything
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return ProcessStamp(pid, int(fields[19]))


def _component(identifier: str) -> str:
    return quote(identifier, safe="-_").replace(".", "%2E")


# The directories of runs and tasks and the journals, by id: each comes back for every
# write of its run or task (remembered, as building a path costs more than a write to
# the simulator's memory).
@functools.lru_cache(maxsize=4096)
def _run_dir(root: Path, fid: str, eid: str, container_id: str) -> Path:
    return root.joinpath("frameworks", _component(fid), "executors", _component(eid), "runs",
                         _component(container_id))


@functools.lru_cache(maxsize=4096)
def _task_dir(root: Path, fid: str, eid: str, container_id: str, tid: str) -> Path:
    return _run_dir(root, fid, eid, container_id).joinpath("tasks", _component(tid))


@functools.lru_cache(maxsize=4096)
def _journal(root: Path, fid: str, eid: str, container_id: str, tid: str) -> Path:
    return _task_dir(root, fid, eid, container_id, tid) / "updates"


def encode_record(record: JournalRecord) -> bytes:
    if record.kind is JournalKind.UPDATE:
        assert record.update is not None
        body = record.update.SerializeToString()
    else:
        body = record.uuid
    return _HEADER.pack(int(record.kind), len(body), zlib.crc32(body)) + body


def read_journal(path: Path, store: Store = FILES) -> list[JournalRecord]:
    """The records of the journal at `path`; a torn last record is truncated away."""
    try:
        data = store.read(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CheckpointError(f"cannot read journal {path}: {exc}") from exc
    records: list[JournalRecord] = []
    offset = 0
    while offset < len(data):
        end = offset + _HEADER.size
        if end > len(data):
            _truncate_torn(store, path, offset, len(data))
            break
        kind, length, crc = _HEADER.unpack_from(data, offset)
        stop = end + length
        if stop > len(data):
            _truncate_torn(store, path, offset, len(data))
            break
        body = data[end:stop]
        if zlib.crc32(body) != crc:
            if stop == len(data):
                _truncate_torn(store, path, offset, len(data))
                break
            raise CheckpointError(f"corrupt checkpoint {path}: record at byte {offset} fails its checksum")
        try:
            kind = JournalKind(kind)
        except ValueError:
            raise CheckpointError(f"corrupt checkpoint {path}: unknown record kind {kind} at byte {offset}") from None
        if kind is JournalKind.UPDATE:
            update = _parse(pb.StatusUpdate, body, path)
            records.append(JournalRecord(kind, update.uuid, update))
        else:
            records.append(JournalRecord(kind, body))
        offset = stop
    return records


def _truncate_torn(store: Store, path: Path, offset: int, size: int) -> None:
    log.warning("journal %s: truncating a torn last record at byte %d (%d bytes; a crash mid-append)",
                path, offset, size - offset)
    store.truncate(path, offset)


def _parse(cls: type[Message], data: bytes, path: Path) -> Message:  # type: ignore[type-arg]
    try:
        return parse_message(cls, data)
    except DecodeError as exc:
        raise CheckpointError(f"corrupt checkpoint {path}: not a valid {cls.__name__} ({exc})") from None


def _read_message(cls: type[Message], path: Path, store: Store) -> Message:  # type: ignore[type-arg]
    try:
        data = store.read(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    return _parse(cls, data, path)


class Checkpointer:
    """Reads and writes the checkpoint tree of one agent work dir (in `store`: the real
    files unless the simulator gives its memory)."""

    def __init__(self, work_dir: Path, store: Store = FILES) -> None:
        self.root = Path(work_dir) / "meta"
        self.store = store

    # -- paths ----------------------------------------------------------------------
    def _framework_dir(self, fid: str) -> Path:
        return self.root / "frameworks" / _component(fid)

    def _run_dir(self, fid: str, eid: str, container_id: str) -> Path:
        return _run_dir(self.root, fid, eid, container_id)

    def _task_dir(self, fid: str, eid: str, container_id: str, tid: str) -> Path:
        return _task_dir(self.root, fid, eid, container_id, tid)

    # -- writing ----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.store.exists(self.root / "agent.pb")

    def discard(self) -> None:
        """Forget every checkpoint (a fresh agent)."""
        self.store.remove_tree(self.root)

    def write_boot_id(self, boot_id: str) -> None:
        self.store.write(self.root / "boot_id", boot_id.encode() + b"\n")

    def read_boot_id(self) -> str | None:
        path = self.root / "boot_id"
        return read_boot_id(path, self.store) if self.store.exists(path) else None

    def write_agent(self, info: pb.AgentInfo) -> None:
        self.store.write(self.root / "agent.pb", info.SerializeToString())

    def write_framework(self, info: pb.FrameworkInfo) -> None:
        self.store.write(self._framework_dir(info.id.value) / "framework.pb", info.SerializeToString())

    def discard_framework(self, fid: str) -> None:
        self.store.remove_tree(self._framework_dir(fid))

    def write_executor(self, fid: str, info: pb.ExecutorInfo, container_id: str, command_executor: bool,
                       transport: str) -> None:
        run = self._run_dir(fid, info.executor_id.value, container_id)
        if not self.store.exists(run / "executor.pb"):
            self.store.write(run / "executor.pb", info.SerializeToString())
        self.store.write(run / "run.json", json.dumps(
            {"command_executor": command_executor, "transport": transport}).encode())

    def write_pid(self, fid: str, eid: str, container_id: str, stamp: ProcessStamp) -> None:
        self.store.write(self._run_dir(fid, eid, container_id) / "pid", f"{stamp.pid} {stamp.start_time}\n".encode())

    def mark_exited(self, fid: str, eid: str, container_id: str) -> None:
        run = self._run_dir(fid, eid, container_id)
        if self.store.exists(run):
            self.store.write(run / "exited", b"")

    def discard_run(self, fid: str, eid: str, container_id: str) -> None:
        """Remove a finished run's directory (and its executor's, once no run is left)."""
        run = self._run_dir(fid, eid, container_id)
        self.store.remove_tree(run)
        executor_dir = run.parent.parent
        try:
            self.store.remove_dir(executor_dir / "runs")
            self.store.remove_dir(executor_dir)
        except OSError:
            pass  # other runs of the executor remain (or it is gone already)

    def write_task(self, fid: str, eid: str, container_id: str, info: pb.TaskInfo) -> None:
        self.store.write(self._task_dir(fid, eid, container_id, info.task_id.value) / "task.pb",
                         info.SerializeToString())

    def append(self, fid: str, eid: str, container_id: str, tid: str, record: JournalRecord) -> None:
        """Append one record to the task's journal and make it durable."""
        self.store.append(_journal(self.root, fid, eid, container_id, tid), encode_record(record))

    def performers(self) -> dict[type, Performer]:
        """How each of the agent engine's checkpoint actions (`CHECKPOINT_ACTIONS`) is
        written here: one table, for the daemon's runtime and the simulator."""
        return {
            CheckpointAgent: lambda a: self.write_agent(a.info),
            CheckpointFramework: lambda a: self.write_framework(a.info),
            DiscardFramework: lambda a: self.discard_framework(a.framework_id),
            CheckpointExecutor: lambda a: self.write_executor(a.framework_id, a.info, a.container_id,
                                                              a.command_executor, a.transport),
            CheckpointExecutorExited: lambda a: self.mark_exited(a.framework_id, a.executor_id, a.container_id),
            CheckpointTask: lambda a: self.write_task(a.framework_id, a.executor_id, a.container_id, a.info),
            JournalAppend: lambda a: self.append(a.framework_id, a.executor_id, a.container_id, a.task_id, a.record),
            DiscardRun: lambda a: self.discard_run(a.framework_id, a.executor_id, a.container_id),
        }

    # -- reading ----------------------------------------------------------------------
    def read(self) -> RecoveredState:
        """Everything checkpointed; CheckpointError (naming the file) if any is corrupt."""
        store = self.store
        agent = _read_message(pb.AgentInfo, self.root / "agent.pb", store)
        frameworks: dict[str, pb.FrameworkInfo] = {}
        runs: list[RecoveredRun] = []
        for fdir in store.subdirs(self.root / "frameworks"):
            framework_file = fdir / "framework.pb"
            if not store.exists(framework_file):
                continue  # removed mid-way (framework shut down): nothing to recover
            info = _read_message(pb.FrameworkInfo, framework_file, store)
            frameworks[info.id.value] = info
            for edir in store.subdirs(fdir / "executors"):
                for rdir in store.subdirs(edir / "runs"):
                    run = self._read_run(info.id.value, rdir)
                    if run is not None:
                        runs.append(run)
        return RecoveredState(agent, frameworks, runs)

    def _read_run(self, fid: str, rdir: Path) -> RecoveredRun | None:
        store = self.store
        if not store.exists(rdir / "executor.pb"):
            return None  # the agent died before the run's first file was complete
        executor = _read_message(pb.ExecutorInfo, rdir / "executor.pb", store)
        run_file = rdir / "run.json"
        try:
            run = json.loads(store.read(run_file))
            command_executor, transport = bool(run["command_executor"]), str(run["transport"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"corrupt checkpoint {run_file}: {exc}") from None
        stamp = None
        pid_file = rdir / "pid"
        if store.exists(pid_file):
            try:
                pid, start_time = (int(x) for x in store.read(pid_file).split())
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"corrupt checkpoint {pid_file}: {exc}") from None
            stamp = ProcessStamp(pid, start_time)
        tasks = []
        for tdir in store.subdirs(rdir / "tasks"):
            if store.exists(tdir / "task.pb"):
                tasks.append(RecoveredTask(_read_message(pb.TaskInfo, tdir / "task.pb", store),
                                           read_journal(tdir / "updates", store)))
        return RecoveredRun(
            framework_id=fid, info=executor, container_id=unquote(rdir.name), command_executor=command_executor,
            transport=transport, pid=stamp.pid if stamp else 0, start_time=stamp.start_time if stamp else 0,
            exited=store.exists(rdir / "exited"), tasks=tasks)

