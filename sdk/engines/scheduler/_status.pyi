"""Type stub of corral.engines.scheduler._status (compiled from _status.py + _status.pxd)."""
import enum
from collections.abc import Callable
from typing import Any, final

from corral._core.acks import RecentUuids
from corral.engines._callback import Callback

@final
class TrackedTask:
    agent_id: str
    state: int
    last_update: float
    def __init__(self, agent_id: str, state: int, last_update: float) -> None: ...

def scheduler_updates(rows: list[tuple], delivered_by_task: dict[str, RecentUuids], remembered: int,
                      parse: Callable[[bytes], Any], decode_error: type[BaseException], terminal_states: frozenset[int],
                      event: enum.Enum) -> tuple[list[Callback], list[tuple[str, str, int, bool]], list[str],
                                                 list[tuple[str, bytes, bytes, bool]], int]: ...
def mark_acknowledged(acks: list[tuple[str, str, bytes]], delivered_by_task: dict[str, RecentUuids]) -> int: ...
def track_updates(updates: list[tuple[str, str, int, bool]], tasks: dict[str, TrackedTask],
                  stuck_checked: dict[str, float], pending: dict[str, float] | None, now: float) -> bool: ...
