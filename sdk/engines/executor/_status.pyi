"""Type stub of corral.engines.executor._status (compiled from _status.py + _status.pxd)."""
from typing import final
from corral._core.acks import AckTracker

@final
class UpdateSource:
    framework_id: str
    executor_id: str
    stamp: bytes
    def __init__(self, framework_id: str, executor_id: str, prefix: bytes, stamp: bytes, uuid_key: bytes,
                 tracker: AckTracker) -> None: ...
    def add(self, serialised: bytes, now: float) -> tuple | None: ...

def executor_acks(rows: list[tuple[str, bytes]], tracker: AckTracker, now: float) -> tuple[list[tuple], bool]: ...
