"""Task-state facts and status builders shared by every engine."""
from __future__ import annotations

from corral.protos import corral_pb2 as pb

TaskState = pb.TaskState
Reason = pb.TaskStatus.Reason
Source = pb.TaskStatus.Source

TERMINAL_STATES = frozenset(
    {
        pb.TASK_FINISHED,
        pb.TASK_FAILED,
        pb.TASK_KILLED,
        pb.TASK_ERROR,
        pb.TASK_LOST,
        pb.TASK_DROPPED,
        pb.TASK_GONE,
        pb.TASK_GONE_BY_OPERATOR,
    }
)


def is_terminal(state: int) -> bool:
    return state in TERMINAL_STATES


def state_name(state: int) -> str:
    """A task state by name, e.g. "TASK_RUNNING"."""
    return pb.TaskState.Name(state)


def reason_name(reason: int) -> str:
    """A status's `reason` by name, e.g. "REASON_EXECUTOR_TERMINATED"."""
    return pb.TaskStatus.Reason.Name(reason)


def source_name(source: int) -> str:
    """A status's `source` by name, e.g. "SOURCE_EXECUTOR"."""
    return pb.TaskStatus.Source.Name(source)


def has_capability(info: pb.FrameworkInfo, capability: int) -> bool:
    return any(c.type == capability for c in info.capabilities)


def partition_aware(info: pb.FrameworkInfo) -> bool:
    return has_capability(info, pb.FrameworkInfo.Capability.PARTITION_AWARE)


#: states a framework that does not declare PARTITION_AWARE is told as TASK_LOST
PARTITION_AWARE_STATES = frozenset(
    {pb.TASK_UNREACHABLE, pb.TASK_GONE, pb.TASK_GONE_BY_OPERATOR, pb.TASK_UNKNOWN, pb.TASK_DROPPED}
)


def for_framework(info: pb.FrameworkInfo, state: int) -> int:
    """The state a framework is told: partition-aware states become TASK_LOST for
    frameworks that do not declare PARTITION_AWARE."""
    if state in PARTITION_AWARE_STATES and not partition_aware(info):
        return pb.TASK_LOST
    return state


def new_status(
    task_id: str,
    state: int,
    source: int,
    now: float,
    *,
    reason: int | None = None,
    message: str = "",
    agent_id: str | None = None,
    executor_id: str | None = None,
    uuid: bytes | None = None,
) -> pb.TaskStatus:
    status = pb.TaskStatus(state=state, source=source, timestamp=now)
    status.task_id.value = task_id
    if reason is not None:
        status.reason = reason
    if message:
        status.message = message
    if agent_id:
        status.agent_id.value = agent_id
    if executor_id:
        status.executor_id.value = executor_id
    if uuid is not None:
        status.uuid = uuid
    return status
