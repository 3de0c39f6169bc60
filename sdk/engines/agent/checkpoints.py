"""What the agent checkpoints and how a restart reads it back: the checkpoint actions the
daemon performs synchronously, in order, before the actions after them (frameworks,
executors, tasks, each task's update journal), and the state `recover` is given."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from corral.protos import corral_pb2 as pb


class JournalKind(enum.IntEnum):
    UPDATE = 1
    ACK = 2


@dataclass(slots=True)
class JournalRecord:
    """One entry of a task's update journal: an update (with its uuid), or the uuid of
    an acknowledged update."""

    kind: JournalKind
    uuid: bytes
    update: pb.StatusUpdate | None = None


@dataclass
class RecoveredTask:
    info: pb.TaskInfo
    journal: list[JournalRecord]


@dataclass
class RecoveredRun:
    """One checkpointed executor run (container) and its tasks."""

    framework_id: str
    info: pb.ExecutorInfo
    container_id: str
    command_executor: bool
    transport: str
    pid: int
    start_time: int
    exited: bool
    tasks: list[RecoveredTask]


@dataclass
class RecoveredState:
    agent: pb.AgentInfo
    frameworks: dict[str, pb.FrameworkInfo]
    runs: list[RecoveredRun]


@dataclass(slots=True)
class CheckpointAgent:
    info: pb.AgentInfo


@dataclass(slots=True)
class CheckpointFramework:
    info: pb.FrameworkInfo


@dataclass(slots=True)
class DiscardFramework:
    """The framework was shut down: forget its checkpoints."""

    framework_id: str


@dataclass(slots=True)
class DiscardRun:
    """An executor run is over and every update of its tasks was acknowledged: nothing
    in its checkpoint is needed by a restart any more."""

    framework_id: str
    executor_id: str
    container_id: str


@dataclass(slots=True)
class CheckpointExecutor:
    framework_id: str
    info: pb.ExecutorInfo
    container_id: str
    command_executor: bool
    transport: str


@dataclass(slots=True)
class CheckpointExecutorExited:
    framework_id: str
    executor_id: str
    container_id: str


@dataclass(slots=True)
class CheckpointTask:
    framework_id: str
    executor_id: str
    container_id: str
    info: pb.TaskInfo


@dataclass(slots=True)
class JournalAppend:
    framework_id: str
    executor_id: str
    container_id: str
    task_id: str
    record: JournalRecord


#: every action that must reach the disk before the actions after it are performed
CHECKPOINT_ACTIONS = (CheckpointAgent, CheckpointFramework, DiscardFramework, CheckpointExecutor,
                      CheckpointExecutorExited, CheckpointTask, JournalAppend, DiscardRun)
