"""The message catalogue: which protobuf class travels under which MessageType, and
the connection events the transport reports about peers.

Owns the one table that maps an envelope's type number to its body class, and how a
body is parsed (`PARSE`), so the transport, runtimes and simulator decode bodies without
knowing any protocol rule.
"""
from __future__ import annotations

import functools
from enum import Enum, IntEnum
from typing import Any, Callable

from google.protobuf.message import DecodeError, Message

from corral.net import wire
from corral.protos import corral_pb2 as pb

MessageType = IntEnum(  # type: ignore[misc]
    "MessageType",
    {name: number for name, number in pb.MessageType.items() if number != 0},
)
MessageType.__doc__ = "Envelope type numbers, generated from corral.proto's MessageType."

_BODY_NAMES: dict[str, str] = {
    "SUBSCRIBE": "Subscribe",
    "TEARDOWN": "Teardown",
    "ACCEPT": "Accept",
    "DECLINE": "Decline",
    "REVIVE": "Revive",
    "SUPPRESS": "Suppress",
    "KILL": "Kill",
    "ACKNOWLEDGE": "Acknowledge",
    "RECONCILE": "Reconcile",
    "FRAMEWORK_TO_EXECUTOR": "FrameworkToExecutor",
    "DEACTIVATE": "Deactivate",
    "SUBSCRIBED": "Subscribed",
    "OFFERS": "Offers",
    "RESCIND": "Rescind",
    "UPDATES": "Updates",
    "EXECUTOR_TO_FRAMEWORK": "ExecutorToFramework",
    "FAILURE": "Failure",
    "ERROR": "Error",
    "REGISTER_AGENT": "RegisterAgent",
    "REREGISTER_AGENT": "ReregisterAgent",
    "AGENT_REGISTERED": "AgentRegistered",
    "AGENT_REREGISTERED": "AgentReregistered",
    "RUN_TASK": "RunTask",
    "KILL_TASK": "KillTask",
    "STATUS_UPDATE": "StatusUpdateMessage",
    "STATUS_UPDATE_ACK": "StatusUpdateAck",
    "PING": "Ping",
    "PONG": "Pong",
    "SHUTDOWN_FRAMEWORK": "ShutdownFramework",
    "EXITED_EXECUTOR": "ExitedExecutor",
    "UNREGISTER_AGENT": "UnregisterAgent",
    "CHECKPOINT_RESOURCES": "CheckpointResources",
    "RECONCILE_TASKS": "ReconcileTasks",
    "TASK_CONTAINERS": "TaskContainers",
    "REGISTER_EXECUTOR": "RegisterExecutor",
    "REREGISTER_EXECUTOR": "ReregisterExecutor",
    "EXECUTOR_REGISTERED": "ExecutorRegistered",
    "EXECUTOR_REREGISTERED": "ExecutorReregistered",
    "RUN_EXECUTOR_TASK": "RunExecutorTask",
    "KILL_EXECUTOR_TASK": "KillExecutorTask",
    "EXECUTOR_STATUS_UPDATE": "ExecutorStatusUpdate",
    "EXECUTOR_STATUS_UPDATE_ACK": "ExecutorStatusUpdateAck",
    "SHUTDOWN_EXECUTOR": "ShutdownExecutor",
    "AGENT_TO_EXECUTOR_MESSAGE": "AgentToExecutorMessage",
    "EXECUTOR_TO_AGENT_MESSAGE": "ExecutorToAgentMessage",
    "AGENT_RECONNECT": "AgentReconnect",
}

#: the status path's types, whose bodies are `corral.net.wire` classes (rows, not protobuf
#: objects; their schemas, of the same names, are in corral.proto)
WIRE_TYPES = frozenset({"ACKNOWLEDGE", "UPDATES", "STATUS_UPDATE", "STATUS_UPDATE_ACK",
                        "EXECUTOR_STATUS_UPDATE", "EXECUTOR_STATUS_UPDATE_ACK"})

BODY_CLASS: dict[int, type[Any]] = {
    MessageType[name]: getattr(wire if name in WIRE_TYPES else pb, cls) for name, cls in _BODY_NAMES.items()
}
TYPE_OF: dict[type[Any], MessageType] = {cls: MessageType(t) for t, cls in BODY_CLASS.items()}

assert set(BODY_CLASS) == set(MessageType), "every MessageType needs a body class"


def parse_message(cls: type[Message], data: bytes) -> Message:
    """`cls` parsed from `data`; DecodeError when the bytes do not parse or a required
    field is missing (protobuf's C++ parser refuses those; upb's Python parser lets them
    through, and a handler would then fail on the answers it builds from them)."""
    message = cls.FromString(data)
    if not message.IsInitialized():
        raise DecodeError(f"{cls.__name__} is missing required field {_missing_field(message) or '(unnamed)'}")
    return message


def _missing_field(message: Message, prefix: str = "") -> str:
    """The path of the first required field missing in `message` or a message it holds
    ("" when none). (upb's `FindInitializationErrors` crashed the process on some
    malformed messages: protobuf 7.36 on Python 3.11.)"""
    for field in message.DESCRIPTOR.fields:
        path = prefix + field.name
        if field.is_required and not message.HasField(field.name):
            return path
        kind = field.message_type
        if kind is None:
            continue
        if not field.is_repeated:
            held = [(path, getattr(message, field.name))] if message.HasField(field.name) else []
        elif kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].message_type is None:
                continue
            held = [(f"{path}[{key!r}]", value) for key, value in getattr(message, field.name).items()]
        else:
            held = [(f"{path}[{i}]", item) for i, item in enumerate(getattr(message, field.name))]
        for where, sub in held:
            missing = _missing_field(sub, where + ".")
            if missing:
                return missing
    return ""


#: how a body of each type is parsed from its bytes (DecodeError when malformed): the
#: status path's row codec, or `parse_message`
PARSE: dict[int, Callable[[bytes], Any]] = {
    t: cls.FromString if MessageType(t).name in WIRE_TYPES else functools.partial(parse_message, cls)
    for t, cls in BODY_CLASS.items()
}

#: the same as plain ints, for the send path (no enum on the wire)
TYPE_NUMBER: dict[type[Any], int] = {cls: int(t) for cls, t in TYPE_OF.items()}


def message_type(body: Any) -> MessageType:
    """The envelope type under which `body` travels."""
    return TYPE_OF[type(body)]


class PeerEvent(Enum):
    """What the transport learns about the connection towards a peer (as libprocess'
    `exited`): the peer's process died, or the network between us failed, or it is
    reachable again."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
