"""Type stub of corral.engines.agent._status (compiled from _status.py + _status.pxd)."""
from typing import Any, final

from corral._core.acks import AckTracker
from corral.protos import corral_pb2 as pb

@final
class AgentTask:
    info: pb.TaskInfo
    framework_id: str
    executor_id: str
    state: int
    container_id: str
    checkpoint: bool
    def __init__(self, info: pb.TaskInfo, framework_id: str, executor_id: str, state: int = ...,
                 container_id: str = "", checkpoint: bool = False) -> None: ...

def agent_intake(rows: list[tuple], sender: str, executors: dict[tuple[str, str], Any],
                 tasks: dict[str, dict[str, AgentTask]], tracker: AckTracker, suffix: bytes, now: float
                 ) -> tuple[list[tuple], list[tuple[AgentTask, tuple]], dict[str, list[tuple[str, bytes]]], int, int]: ...
def agent_acks(rows: list[tuple], tracker: AckTracker, tasks: dict[str, dict[str, AgentTask]], terminal: frozenset[int],
               now: float) -> tuple[list[tuple], list[tuple[AgentTask, str, bytes]],
                                    list[tuple[tuple[str, str], AgentTask | None]], int]: ...
