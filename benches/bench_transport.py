"""Messages per second through corral's transport vs raw pyzmq, same run, tcp loopback.

Each round sends N 100-byte messages from one endpoint to another in this process and
reads them all back:
- `corral`: `Transport.send` (envelope encode + PUSH) then `Transport.wait`/`drain`
  (dispatcher: decode header, look up handler, call it);
- `raw_pyzmq`: the same count of 100-byte frames through a PUSH/PULL pair with
  `send`/`recv` and nothing else.
Send and receive are serialised (send all, then read all), so the figure is the
per-message Python cost of both ends; ZeroMQ's I/O threads carry the bytes.

The send side alone (`test_send_*`: N sends per round, timed; the receiver is emptied
between rounds, untimed), per 100-byte message, same run:
- `raw_pyzmq`: `push.send(frame, zmq.NOBLOCK)`;
- `core_libzmq`: `corral._core.send.send_frame(push, frame)`, compiled, libzmq's zmq_send called
  directly (`SEND_PATH = libzmq`); `core_libzmq_encode`: `encode_and_send`, the
  envelope written straight into a libzmq message; `core_libzmq_encode_then_send`:
  `send_frame(push, encode(...))`, the same with an intermediate bytes object;
- `core_pyzmq`: `send_frame` on its pyzmq fallback path (`socket.send(frame, NOBLOCK)`);
- `transport`: `Transport.send` (per-peer lookup, encode and send, counters).
The per-message medians are printed at the end ("corral._core ratios").

Run: python -m pytest benches/bench_transport.py --benchmark-only
"""
from __future__ import annotations

import pytest
import zmq

from corral import _core
from corral.net.transport import Transport
from corral._core.envelope import HEADER_SIZE, Dispatcher, encode
from corral._core.send import encode_and_send, select_send_path, send_frame

N = 100_000
BODY = b"x" * (100 - HEADER_SIZE - len(b"tcp://127.0.0.1:65535"))
MSG_TYPE = 33


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, env: object) -> None:
        self.n += 1


@pytest.fixture(scope="module")
def corral_pair():
    counter = Counter()
    rx_dispatcher = Dispatcher()
    rx_dispatcher.register(MSG_TYPE, counter)
    receiver = Transport("127.0.0.1", 0, rx_dispatcher)
    sender = Transport("127.0.0.1", 0, Dispatcher())
    yield sender, receiver, counter
    sender.close()
    receiver.close()


def test_transport_corral(benchmark, record, corral_pair):
    sender, receiver, counter = corral_pair
    to = receiver.address

    def round_trip() -> None:
        counter.n = 0
        send = sender.send
        for _ in range(N):
            send(to, MSG_TYPE, BODY)
        while counter.n < N:
            if receiver.wait(5.0):
                receiver.drain()
        assert counter.n == N

    benchmark.extra_info["messages"] = N
    benchmark.pedantic(round_trip, rounds=5, warmup_rounds=1)
    benchmark.extra_info["msgs_per_s"] = N / benchmark.stats.stats.median
    record(benchmark, "transport round trip, send + receive", "corral", N)


SEND_VARIANTS = ["raw_pyzmq", "core_libzmq", "core_libzmq_encode", "core_libzmq_encode_then_send",
                 "core_pyzmq"]


@pytest.mark.parametrize("variant", SEND_VARIANTS)
def test_send(benchmark, record, variant, zmq_sink):
    if variant.startswith("core_libzmq") and _core.CORE != "cython":
        pytest.skip("the libzmq send path is the compiled core's")
    if variant != "raw_pyzmq":
        select_send_path(prefer_libzmq=variant != "core_pyzmq")
    push, pull = zmq_sink
    sender = b"tcp://127.0.0.1:65535"
    frame = encode(MSG_TYPE, 1, sender, BODY)
    assert len(frame) == 100
    expected = [0]

    def empty_receiver():  # untimed: read everything the previous round sent
        recv = pull.recv
        for _ in range(expected[0]):
            recv()
        expected[0] = 0

    if variant == "raw_pyzmq":
        def run():
            send, noblock = push.send, zmq.NOBLOCK
            for _ in range(N):
                send(frame, noblock)
    elif variant == "core_libzmq_encode":
        def run():
            send = encode_and_send
            for seq in range(N):
                if not send(push, MSG_TYPE, seq, sender, BODY):
                    raise AssertionError("dropped")
    elif variant == "core_libzmq_encode_then_send":
        def run():
            send, make = send_frame, encode
            for seq in range(N):
                if not send(push, make(MSG_TYPE, seq, sender, BODY)):
                    raise AssertionError("dropped")
    else:
        def run():
            send = send_frame
            for _ in range(N):
                if not send(push, frame):
                    raise AssertionError("dropped")

    def timed():
        run()
        expected[0] = N

    try:
        benchmark.pedantic(timed, setup=empty_receiver, rounds=5, warmup_rounds=1)
        empty_receiver()
    finally:
        if variant != "raw_pyzmq":
            select_send_path()
        push.close()
        pull.close()
    record(benchmark, "send one 100-byte frame", variant, N)


def test_send_transport(benchmark, record, corral_pair):
    sender, receiver, counter = corral_pair
    to = receiver.address
    sent = sender.counters.sent

    def empty_receiver():
        while counter.n < sender.counters.sent - sent:
            if receiver.wait(5.0):
                receiver.drain()

    def run():
        send = sender.send
        for _ in range(N):
            send(to, MSG_TYPE, BODY)

    counter.n = 0
    benchmark.pedantic(run, setup=empty_receiver, rounds=5, warmup_rounds=1)
    empty_receiver()
    assert sender.counters.dropped == 0
    record(benchmark, "send one 100-byte frame", "transport", N)


def test_transport_raw_pyzmq(benchmark, record):
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 0)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.connect(f"tcp://127.0.0.1:{port}")
    frame = b"x" * 100

    def round_trip() -> None:
        send, recv = push.send, pull.recv
        for _ in range(N):
            send(frame)
        for _ in range(N):
            recv()

    benchmark.extra_info["messages"] = N
    benchmark.pedantic(round_trip, rounds=5, warmup_rounds=1)
    benchmark.extra_info["msgs_per_s"] = N / benchmark.stats.stats.median
    record(benchmark, "transport round trip, send + receive", "raw_pyzmq", N)
    push.close(linger=0)
    pull.close(linger=0)
