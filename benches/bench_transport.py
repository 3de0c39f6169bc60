"""Messages per second through corral's transport vs raw pyzmq, same run, tcp loopback.

Each round sends N 100-byte messages from one endpoint to another in this process and
reads them all back:
- `corral`: `Transport.send` (envelope encode + PUSH) then `Transport.wait`/`drain`
  (dispatcher: decode header, look up handler, call it);
- `raw_pyzmq`: the same count of 100-byte frames through a PUSH/PULL pair with
  `send`/`recv` and nothing else.
Send and receive are serialised (send all, then read all), so the figure is the
per-message Python cost of both ends; ZeroMQ's I/O threads carry the bytes.

Run: python -m pytest benches/bench_transport.py --benchmark-only
"""
from __future__ import annotations

import pytest
import zmq

from corral import _core
from corral.transport import Transport

N = 100_000
BODY = b"x" * (100 - _core.HEADER_SIZE - len(b"tcp://127.0.0.1:65535"))
MSG_TYPE = 33


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, env: object) -> None:
        self.n += 1


@pytest.fixture(scope="module")
def corral_pair():
    counter = Counter()
    rx_dispatcher = _core.Dispatcher()
    rx_dispatcher.register(MSG_TYPE, counter)
    receiver = Transport("127.0.0.1", 0, rx_dispatcher)
    sender = Transport("127.0.0.1", 0, _core.Dispatcher())
    yield sender, receiver, counter
    sender.close()
    receiver.close()


def test_transport_corral(benchmark, corral_pair):
    sender, receiver, counter = corral_pair
    to = receiver.address

    def round_trip() -> None:
        counter.n = 0
        send = sender.send
        for _ in range(N):
            send(to, MSG_TYPE, BODY)
        while counter.n < N:
            if receiver.wait(5.0):
                receiver.drain(N)
        assert counter.n == N

    benchmark.extra_info["messages"] = N
    benchmark.pedantic(round_trip, rounds=5, warmup_rounds=1)
    benchmark.extra_info["msgs_per_s"] = N / benchmark.stats.stats.median


def test_transport_raw_pyzmq(benchmark):
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
    push.close(linger=0)
    pull.close(linger=0)
