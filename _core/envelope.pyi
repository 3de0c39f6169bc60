"""Type stub of corral._core.envelope (compiled from envelope.py + envelope.pxd)."""
import enum
from collections.abc import Callable, Iterable
from typing import Any, final

MAGIC: int
VERSION: int
HEADER_SIZE: int
BATCH_TYPE: int
DEFAULT_MAX_FRAME_SIZE: int
PEERS_TAKEN: int

class EnvelopeError(ValueError): ...

@final
class Envelope:
    @property
    def type(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def sender(self) -> bytes: ...
    @property
    def body(self) -> bytes: ...

def decode(frame: bytes) -> Envelope: ...
def encode(msg_type: int, seq: int, sender: bytes, body: bytes) -> bytes: ...
def encode_batch(frames: list[bytes]) -> bytes: ...


class DispatchError(enum.IntEnum):
    MALFORMED = 1
    UNKNOWN_TYPE = 2
    OVERSIZED = 3
    HANDLER_FAILED = 4
    REFUSED = 5

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
    def authenticate(self, sink: Any, revoked: Iterable[str] = ()) -> None: ...
    def revoke(self, revoked: Iterable[str]) -> None: ...

def select_drain_path(prefer_libzmq: bool = True) -> DrainPath: ...
