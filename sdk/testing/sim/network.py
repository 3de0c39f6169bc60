"""The simulated network: `SimNetwork` carries every message between addresses as
bytes (serialised on send, parsed on delivery), each link FIFO, applying a `FaultPlan`."""
from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from google.protobuf.message import Message

from corral.net.protocol import PARSE, MessageType, message_type
from corral.testing.sim.faults import FaultPlan, Partition


class NetEvent(enum.Enum):
    SENT = "sent"
    DELIVERED = "delivered"
    DROPPED = "dropped"
    DUPLICATED = "duplicated"
    DELAYED = "delayed"
    PARTITIONED = "partitioned"
    #: nobody listens at the address (e.g. an executor that has exited)
    UNDELIVERABLE = "undeliverable"
    #: the receiver has no handler for the type (the real dispatcher counts these too)
    UNHANDLED = "unhandled"


@dataclass(frozen=True)
class Delivery:
    """One message as it was delivered (recorded when the network's `record` is on)."""

    at: float
    sender: str
    to: str
    body: Message

    @property
    def type(self) -> MessageType:
        return message_type(self.body)


@dataclass(order=True)
class _InFlight:
    at: float
    seq: int
    sender: str = field(compare=False)
    to: str = field(compare=False)
    msg_type: MessageType = field(compare=False)
    data: bytes = field(compare=False)


Receiver = Callable[[str, Message], None]


class SimNetwork:
    """Carries messages between addresses, in send order (plus `latency` and any
    delay a fault adds; each link stays FIFO), applying a `FaultPlan`. Bodies travel
    as bytes."""

    def __init__(self, rng: random.Random, plan: FaultPlan | None = None, latency: float = 0.001,
                 record: bool = False) -> None:
        self.rng = rng
        self.plan = plan or FaultPlan()
        self.latency = latency
        self.record = record
        self.deliveries: list[Delivery] = []
        self.stats: Counter[NetEvent] = Counter()
        self._receivers: dict[str, Receiver] = {}
        self._in_flight: list[_InFlight] = []
        self._seq = itertools.count()
        #: every link (sender, receiver) used so far -> when its last message is due
        #: (a link delivers in order: nothing overtakes a delayed message on it)
        self.links: dict[tuple[str, str], float] = {}
        #: told of every partition `partition` starts (the cluster watches heartbeats)
        self.on_partition: Callable[[Partition], None] | None = None

    def attach(self, address: str, receiver: Receiver) -> None:
        self._receivers[address] = receiver

    def detach(self, address: str) -> None:
        self._receivers.pop(address, None)

    def partition(self, addresses: Iterable[str], now: float) -> Partition:
        """Cut `addresses` off from the rest of the network from `now` until `heal`."""
        part = Partition(frozenset(addresses), start=now)
        self.plan.partitions.append(part)
        if self.on_partition is not None:
            self.on_partition(part)
        return part

    def heal(self, part: Partition, now: float) -> None:
        self.plan.partitions.remove(part)
        self.plan.partitions.append(dataclasses.replace(part, end=now))

    def send(self, sender: str, to: str, body: Message, now: float) -> None:
        msg_type = message_type(body)
        data = body.SerializeToString()  # raises if a required field is missing
        self.stats[NetEvent.SENT] += 1
        copies = self.plan.copies(self.rng, sender, to, msg_type, now)
        if not copies:
            self.stats[NetEvent.DROPPED] += 1
            return
        self.stats[NetEvent.DUPLICATED] += len(copies) - 1
        link = (sender, to)
        for extra in copies:
            if extra:
                self.stats[NetEvent.DELAYED] += 1
            at = max(now + self.latency + extra, self.links.get(link, 0.0))
            self.links[link] = at
            heapq.heappush(self._in_flight, _InFlight(at, next(self._seq), sender, to, msg_type, data))

    def next_delivery(self) -> float | None:
        return self._in_flight[0].at if self._in_flight else None

    def in_flight(self) -> int:
        return len(self._in_flight)

    def deliver_next(self, now: float) -> bool:
        """Deliver the earliest message due at `now`; False when none is due."""
        if not self._in_flight or self._in_flight[0].at > now:
            return False
        msg = heapq.heappop(self._in_flight)
        if self.plan.partitioned(msg.sender, msg.to, now):
            self.stats[NetEvent.PARTITIONED] += 1
            return True
        receiver = self._receivers.get(msg.to)
        if receiver is None:
            self.stats[NetEvent.UNDELIVERABLE] += 1
            return True
        body = PARSE[msg.msg_type](msg.data)
        self.stats[NetEvent.DELIVERED] += 1
        if self.record:
            self.deliveries.append(Delivery(now, msg.sender, msg.to, body))
        receiver(msg.sender, body)
        return True

