"""Type stub of corral._core.dispatch (compiled from dispatch.py + dispatch.pxd)."""
import enum
from collections.abc import Callable
from typing import Any, final

from corral._core.envelope import Envelope

class DispatchError(enum.IntEnum):
    MALFORMED = 1
    UNKNOWN_TYPE = 2
    OVERSIZED = 3
    HANDLER_FAILED = 4

class DrainPath(enum.Enum):
    UNRESOLVED = "unresolved"
    LIBZMQ = "libzmq"
    PYZMQ = "pyzmq"

DRAIN_PATH: DrainPath
DRAIN_FALLBACK_REASON: str

@final
class Route:
    parse: Callable[[bytes], Any]
    handle: Callable[[str, Any, float], None]
    clock: Callable[[], float]
    parse_errors: type[BaseException] | tuple[type[BaseException], ...]
    undecodable: Callable[[str, BaseException], None]
    def __init__(self, parse: Callable[[bytes], Any], handle: Callable[[str, Any, float], None],
                 clock: Callable[[], float], parse_errors: type[BaseException] | tuple[type[BaseException], ...],
                 undecodable: Callable[[str, BaseException], None]) -> None: ...

@final
class Dispatcher:
    def __init__(self, max_frame_size: int = ...,
                 on_error: Callable[[DispatchError, str, BaseException | None], None] | None = None) -> None: ...
    @property
    def max_frame_size(self) -> int: ...
    def register(self, msg_type: int, handler: Callable[[Envelope], None] | Route) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def dispatch(self, frame: bytes) -> int: ...
    def drain(self, socket: Any, limit: int) -> int: ...

def select_drain_path(prefer_libzmq: bool = True) -> DrainPath: ...
