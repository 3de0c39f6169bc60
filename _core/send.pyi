"""Type stub of corral._core.send (compiled from send.py + send.pxd)."""
import enum
from typing import Any

class SendPath(enum.Enum):
    UNRESOLVED = "unresolved"
    LIBZMQ = "libzmq"
    PYZMQ = "pyzmq"

SEND_PATH: SendPath
SEND_FALLBACK_REASON: str
SEND_COPY_THRESHOLD: int

def send_frame(socket: Any, frame: bytes) -> bool: ...
def encode_and_send(socket: Any, msg_type: int, seq: int, sender: bytes, body: bytes) -> bool: ...
def select_send_path(prefer_libzmq: bool = True) -> SendPath: ...
