"""Type stub of corral.engines._callback (compiled from _callback.py + _callback.pxd)."""
import enum
from typing import Any, final

@final
class Callback:
    event: enum.Enum
    args: tuple[Any, ...]
    ack: tuple[str, str, bytes] | None
    def __init__(self, event: enum.Enum, *args: Any) -> None: ...
