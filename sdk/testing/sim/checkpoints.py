"""What a simulated agent keeps on disk, kept in memory: `SimCheckpoints`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.engines.agent import (
    CheckpointAgent, CheckpointExecutor, CheckpointExecutorExited, CheckpointFramework, CheckpointTask,
    DiscardFramework, DiscardRun, JournalAppend, JournalKind, JournalRecord, RecoveredRun, RecoveredState,
    RecoveredTask,
)
from corral.protos import corral_pb2 as pb


@dataclass
class _CheckpointedRun:
    info: bytes
    command_executor: bool
    transport: str
    exited: bool = False
    #: task id -> serialised TaskInfo
    tasks: dict[str, bytes] = field(default_factory=dict)


class SimCheckpoints:
    """One agent's checkpoint directory, in memory: performs the engine's checkpoint
    actions (`CHECKPOINT_ACTIONS`) as `corral.agent.checkpoint.Checkpointer` writes them
    (messages are stored serialised, as on disk) and reads them back as the
    `RecoveredState` a restarted agent recovers from."""

    def __init__(self) -> None:
        self.agent: bytes | None = None
        self.frameworks: dict[str, bytes] = {}
        self.runs: dict[tuple[str, str, str], _CheckpointedRun] = {}
        #: (framework, executor, container, task) -> journal records (kind, uuid, update)
        self.journals: dict[tuple[str, str, str, str], list[tuple[JournalKind, bytes, bytes]]] = {}

    def perform(self, action: Any) -> None:
        if isinstance(action, CheckpointAgent):
            self.agent = action.info.SerializeToString()
        elif isinstance(action, CheckpointFramework):
            self.frameworks[action.info.id.value] = action.info.SerializeToString()
        elif isinstance(action, DiscardFramework):
            self.frameworks.pop(action.framework_id, None)
            for key in [k for k in self.runs if k[0] == action.framework_id]:
                del self.runs[key]
            for key in [k for k in self.journals if k[0] == action.framework_id]:
                del self.journals[key]
        elif isinstance(action, DiscardRun):
            key = (action.framework_id, action.executor_id, action.container_id)
            self.runs.pop(key, None)
            for journal in [k for k in self.journals if k[:3] == key]:
                del self.journals[journal]
        elif isinstance(action, CheckpointExecutor):
            key = (action.framework_id, action.info.executor_id.value, action.container_id)
            run = self.runs.get(key)
            if run is None:
                self.runs[key] = _CheckpointedRun(action.info.SerializeToString(), action.command_executor,
                                                  action.transport)
            else:
                run.command_executor, run.transport = action.command_executor, action.transport
        elif isinstance(action, CheckpointExecutorExited):
            run = self.runs.get((action.framework_id, action.executor_id, action.container_id))
            if run is not None:
                run.exited = True
        elif isinstance(action, CheckpointTask):
            run = self.runs.get((action.framework_id, action.executor_id, action.container_id))
            if run is not None:
                run.tasks[action.info.task_id.value] = action.info.SerializeToString()
        elif isinstance(action, JournalAppend):
            record = action.record
            update = record.update.SerializeToString() if record.update is not None else b""
            key = (action.framework_id, action.executor_id, action.container_id, action.task_id)
            self.journals.setdefault(key, []).append((record.kind, record.uuid, update))
        else:
            raise TypeError(f"not a checkpoint action: {action!r}")

    def recovered(self) -> RecoveredState | None:
        """What a restarted agent reads; None when it never checkpointed (a fresh agent)."""
        if self.agent is None:
            return None
        runs = []
        for (fid, eid, cid), run in self.runs.items():
            if fid not in self.frameworks:
                continue
            tasks = [RecoveredTask(pb.TaskInfo.FromString(info), [
                JournalRecord(kind, uuid, pb.StatusUpdate.FromString(update) if kind is JournalKind.UPDATE else None)
                for kind, uuid, update in self.journals.get((fid, eid, cid, tid), [])])
                for tid, info in run.tasks.items()]
            runs.append(RecoveredRun(fid, pb.ExecutorInfo.FromString(run.info), cid, run.command_executor,
                                     run.transport, pid=0, start_time=0, exited=run.exited, tasks=tasks))
        return RecoveredState(pb.AgentInfo.FromString(self.agent),
                              {fid: pb.FrameworkInfo.FromString(info) for fid, info in self.frameworks.items()}, runs)

