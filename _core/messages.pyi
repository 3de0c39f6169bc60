"""Type stub of corral._core.messages (compiled from messages.py + messages.pxd)."""
from typing import TypeVar, final

_U = TypeVar("_U", bound="UpdateMessage")
_A = TypeVar("_A", bound="AckMessage")

class UpdateMessage:
    rows: list[tuple]
    def __init__(self, rows: list[tuple] | None = None) -> None: ...
    @classmethod
    def FromString(cls: type[_U], data: bytes) -> _U: ...  # noqa: N802
    @classmethod
    def relay(cls: type[_U], msg: UpdateMessage) -> _U: ...
    def SerializeToString(self) -> bytes: ...  # noqa: N802

@final
class ExecutorStatusUpdate(UpdateMessage): ...
@final
class StatusUpdateMessage(UpdateMessage): ...
@final
class Updates(UpdateMessage): ...

class AckMessage:
    rows: list[tuple]
    @classmethod
    def FromString(cls: type[_A], data: bytes) -> _A: ...  # noqa: N802
    def SerializeToString(self) -> bytes: ...  # noqa: N802

@final
class Acknowledge(AckMessage):
    framework_id: str
    def __init__(self, framework_id: str, rows: list[tuple] | None = None) -> None: ...

@final
class StatusUpdateAck(AckMessage):
    agent_id: str
    def __init__(self, agent_id: str, rows: list[tuple] | None = None) -> None: ...

@final
class ExecutorStatusUpdateAck(AckMessage):
    agent_id: str
    framework_id: str
    def __init__(self, agent_id: str, framework_id: str, rows: list[tuple] | None = None) -> None: ...
