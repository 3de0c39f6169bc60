"""Type stub of corral.engines.master._status (compiled from _status.py + _status.pxd)."""
from collections.abc import Callable
from typing import Any, final

from corral.resources import Resources

MAX_TASK_STATUSES: int

@final
class MasterTask:
    state: int
    status_update_state: int
    status_update_uuid: bytes
    acked_uuid: bytes
    healthy: bool | None
    agent_id: str
    id: str
    name: str
    framework_id: str
    resources: Resources
    role: str
    statuses: list[bytes]
    def __init__(self, id: str, name: str, framework_id: str, resources: Resources, *, agent_id: str,
                 state: int = ..., role: str = "*") -> None: ...

def master_updates(rows: list[tuple], agent: Any, frameworks: dict[str, Any], healthy_of: dict[int, bool],
                   set_latest: Callable[[MasterTask, Any, int], None]
                   ) -> tuple[dict[str, list[tuple]], list[tuple[str, str, bytes]], int]: ...
def master_acks(rows: list[tuple], framework_id: str, tasks: dict[str, MasterTask], agents: dict[str, Any],
                terminal: frozenset[int]) -> tuple[dict[str, list[tuple[str, str, bytes]]], list[MasterTask], int]: ...
