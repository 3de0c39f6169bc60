"""Wire batching in the transport (`Transport(batch=True)`, `Runtime(batch=True)`): what
one loop iteration sends to a peer leaves as one BATCH frame; real sockets on 127.0.0.1."""
from __future__ import annotations

import threading
import time

import pytest

from corral.net import transport as transport_mod
from corral.engines.base import Engine, on
from corral.net.protocol import MessageType as T
from corral.protos import corral_pb2 as pb
from corral.runtime import Runtime
from corral.testing.cluster import wait_for
from corral.net.transport import Transport
from corral._core.envelope import Dispatcher

MSG = 33


class Inbox:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.senders: set[bytes] = set()

    def __call__(self, env) -> None:
        self.bodies.append(env.body)
        self.senders.add(env.sender)


@pytest.fixture
def pair():
    made: list[Transport] = []

    def make(batch: bool) -> tuple[Transport, Transport, Inbox, Dispatcher]:
        inbox = Inbox()
        rx_dispatcher = Dispatcher()
        rx_dispatcher.register(MSG, inbox)
        receiver = Transport("127.0.0.1", 0, rx_dispatcher)
        sender = Transport("127.0.0.1", 0, Dispatcher(), batch=batch)
        made.extend((receiver, sender))
        return sender, receiver, inbox, rx_dispatcher

    yield make
    for t in made:
        t.close()


def receive(receiver: Transport, inbox: Inbox, n: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(inbox.bodies) < n and time.monotonic() < deadline:
        if receiver.wait(0.1):
            receiver.drain()


def test_batching_is_off_by_default_and_flush_is_a_no_op(pair):
    sender, receiver, inbox, rx = pair(batch=False)
    assert not sender.batching
    for i in range(10):
        assert sender.send(receiver.address, MSG, b"m%d" % i)
    assert sender.flush() == 0
    receive(receiver, inbox, 10)
    assert inbox.bodies == [b"m%d" % i for i in range(10)]
    assert rx.counters()["received"] == 10  # one frame per message


def test_queued_messages_leave_as_one_frame_on_flush_in_order(pair):
    sender, receiver, inbox, rx = pair(batch=True)
    assert sender.batching
    for i in range(500):
        assert sender.send(receiver.address, MSG, b"m%d" % i)
    receive(receiver, inbox, 1, timeout=0.3)
    assert inbox.bodies == []  # nothing leaves before the flush
    assert sender.flush() == 1
    receive(receiver, inbox, 500)
    assert inbox.bodies == [b"m%d" % i for i in range(500)]
    assert inbox.senders == {sender.address.encode()}
    counters = rx.counters()
    assert counters["received"] == 1 and counters["dispatched"] == 500
    assert sender.counters.sent == 500 and sender.counters.dropped == 0
    assert sender.flush() == 0  # the queue is empty again


def test_a_single_queued_message_goes_as_itself(pair):
    sender, receiver, inbox, rx = pair(batch=True)
    sender.send(receiver.address, MSG, b"alone")
    assert sender.flush() == 1
    receive(receiver, inbox, 1)
    assert inbox.bodies == [b"alone"]
    assert rx.counters()["received"] == rx.counters()["dispatched"] == 1
    assert sender.counters.sent == 1


def test_large_queues_are_split_at_the_batch_size_limit_keeping_order(pair, monkeypatch):
    monkeypatch.setattr(transport_mod, "BATCH_MAX_BYTES", 4096)
    sender, receiver, inbox, rx = pair(batch=True)
    body = b"x" * 500
    for i in range(40):
        sender.send(receiver.address, MSG, body + b"%d" % i)
    sender.send(receiver.address, MSG, b"y" * 10_000)  # larger than a batch: goes alone
    frames = sender.flush()
    assert 5 <= frames <= 12
    receive(receiver, inbox, 41)
    assert inbox.bodies[:40] == [body + b"%d" % i for i in range(40)]
    assert inbox.bodies[40] == b"y" * 10_000
    assert rx.counters()["received"] == frames
    assert sender.counters.sent == 41


def test_queues_are_per_peer(pair):
    sender, receiver, inbox, _ = pair(batch=True)
    inbox2 = Inbox()
    rx2 = Dispatcher()
    rx2.register(MSG, inbox2)
    receiver2 = Transport("127.0.0.1", 0, rx2)
    try:
        for i in range(5):
            sender.send(receiver.address, MSG, b"a%d" % i)
            sender.send(receiver2.address, MSG, b"b%d" % i)
        assert sender.flush() == 2
        receive(receiver, inbox, 5)
        receive(receiver2, inbox2, 5)
        assert inbox.bodies == [b"a%d" % i for i in range(5)]
        assert inbox2.bodies == [b"b%d" % i for i in range(5)]
    finally:
        receiver2.close()


def test_forget_peer_drops_what_is_queued_for_it_and_close_flushes(pair):
    sender, receiver, inbox, _ = pair(batch=True)
    sender.send(receiver.address, MSG, b"forgotten")
    sender.forget_peer(receiver.address)
    assert sender.flush() == 0
    sender.send(receiver.address, MSG, b"flushed by close")
    sender.close()
    receive(receiver, inbox, 1)
    assert inbox.bodies == [b"flushed by close"]


def test_sends_after_close_are_dropped_and_counted(pair):
    sender, receiver, _, _ = pair(batch=True)
    sender.close()
    assert not sender.send(receiver.address, MSG, b"late")
    assert sender.counters.dropped == 1


class Echo(Engine):
    """Answers every Ping with a Pong carrying the same master id."""

    @on(T.PING)
    def _ping(self, sender: str, msg: pb.Ping, now: float) -> None:
        self.send(sender, pb.Pong(agent_id=pb.AgentID(value=msg.master_id)))


class Collect(Engine):
    def __init__(self) -> None:
        super().__init__()
        self.pongs: list[str] = []
        self.done = threading.Event()
        self.expected = 0

    @on(T.PONG)
    def _pong(self, sender: str, msg: pb.Pong, now: float) -> None:
        self.pongs.append(msg.agent_id.value)
        if len(self.pongs) == self.expected:
            self.done.set()


@pytest.mark.parametrize("batch", [False, True])
def test_runtimes_with_and_without_batching_interoperate(batch):
    echo = Runtime(lambda _a: Echo(), batch=batch)
    collect = Runtime(lambda _a: Collect(), batch=not batch)
    echo.start("echo")
    collect.start("collect")
    try:
        engine = collect.engine
        engine.expected = 500

        def ping_all() -> None:
            for i in range(500):
                engine.send(echo.address, pb.Ping(master_id=f"p{i}"))

        collect.call_soon(ping_all)
        assert engine.done.wait(10), len(engine.pongs)
        assert engine.pongs == [f"p{i}" for i in range(500)]
        batching_side = collect if not batch else echo
        # the 500 messages of one iteration left the batching side in few frames (counted
        # by its I/O thread once each frame is handed to ZeroMQ, which may be after the
        # other side has read them all)
        counters = batching_side.transport.counters
        wait_for(lambda: counters.sent == 500, 5, "the batching side to count its 500 envelopes sent")
        assert counters.sent == 500
        other = echo if batching_side is collect else collect
        assert other.dispatcher.counters()["received"] < 50
    finally:
        for r in (echo, collect):
            r.stop()
            r.join(5)
