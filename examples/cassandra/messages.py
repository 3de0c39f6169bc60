"""The store's messages, between clients and nodes and between nodes.

A frame is one msgpack array `[sender, [message, ...]]`: `sender` is the sending node's
address, or nil from a client (whose replies go back on the same connection). A
message is an array whose first element is its `Verb`. Requests that expect an answer
carry a request id (`rid`) as their second element; every answer is a `REPLY` (between
nodes) or a `RESULT` (to a client) with the same id.

Client verbs, with their fields after the rid:
  PUT key value consistency timestamp|nil   GET key consistency
  DELETE key consistency timestamp|nil      RING    REPAIR    DECOMMISSION
  RESULT rid error|nil payload   (error: an `ErrorKind` value and a message)

Node verbs:
  MUTATE rid key timestamp value|nil     READ rid key digest_only
  GOSSIP_SYN cluster digests             GOSSIP_ACK requests states     GOSSIP_ACK2 states
  SHUTDOWN host_id generation            RANGE_DIGESTS rid ranges
  STREAM_PULL rid range after max_bytes  PUSH rid cells
  REPLY rid payload
"""
from __future__ import annotations

import enum
from typing import Any

import msgpack


class Verb(enum.IntEnum):
    PUT = 1
    GET = 2
    DELETE = 3
    RING = 4
    REPAIR = 5
    DECOMMISSION = 6
    RESULT = 10
    MUTATE = 20
    READ = 21
    GOSSIP_SYN = 30
    GOSSIP_ACK = 31
    GOSSIP_ACK2 = 32
    SHUTDOWN = 33
    RANGE_DIGESTS = 40
    STREAM_PULL = 41
    PUSH = 42
    REPLY = 50


class ErrorKind(str, enum.Enum):
    """Why a request failed; the client retries NOT_READY and lost coordinators on
    another node, and reports the others."""

    UNAVAILABLE = "Unavailable"      # fewer live replicas than the consistency level needs
    TIMEOUT = "Timeout"              # replicas did not answer in time
    INVALID = "Invalid"              # a malformed request
    NOT_READY = "NotReady"           # this node is not serving (joining, leaving, left)


def encode_frame(sender: str | None, messages: list[Any]) -> bytes:
    return msgpack.packb((sender, messages), use_bin_type=True)


def decode_frame(data: bytes) -> tuple[str | None, list[Any]]:
    """(sender, messages); ValueError for a frame that is not one."""
    try:
        sender, messages = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several types for garbage
        raise ValueError(f"undecodable frame: {exc}") from None
    if not isinstance(messages, tuple) or (sender is not None and not isinstance(sender, str)):
        raise ValueError("malformed frame: expected [sender, [messages]]")
    return sender, list(messages)
