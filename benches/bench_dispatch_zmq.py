"""Dispatcher.drain over a real ZeroMQ PULL socket vs a raw pyzmq recv loop.

Each round pre-fills the PULL socket with N 100-byte frames (setup, not timed), then
either drains it through the Dispatcher (decode, look up, call a trivial handler) or
reads it with ``for _ in range(N): sock.recv()``. Same run, same socket kind.

Run: python -m pytest benches/bench_dispatch_zmq.py --benchmark-only
"""
from __future__ import annotations

import pytest

zmq = pytest.importorskip("zmq")

import corral._core.envelope as envelope  # noqa: E402
from corral._core.envelope import Dispatcher, encode, select_drain_path  # noqa: E402

N = 200_000
ROUNDS = 8
SENDER = b"tcp://127.0.0.1:15050"


@pytest.fixture(scope="module")
def sockets():
    # inproc: once push.send() returns the frame is in the PULL socket's queue, so the
    # pre-fill is complete and deterministic (over tcp the I/O thread would still be
    # delivering while the timed loop runs). Both variants read the same kind of queue.
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 0)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("inproc://bench-drain")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.setsockopt(zmq.LINGER, 0)
    push.connect("inproc://bench-drain")
    yield push, pull
    push.close()
    pull.close()
    ctx.term()


def prefill(push, pull, frame):
    send = push.send
    for _ in range(N):
        send(frame)
    assert pull.poll(0, zmq.POLLIN)


@pytest.mark.parametrize("variant", ["drain", "drain_pyzmq_path", "raw_recv"])
def test_drain_vs_raw_recv(benchmark, sockets, variant, record):
    push, pull = sockets
    frame = encode(7, 1, SENDER, b"x" * (100 - 12 - len(SENDER)))
    assert len(frame) == 100
    d = Dispatcher()
    d.register(7, lambda env: None)

    if variant == "raw_recv":
        recv = pull.recv

        def consume():
            for _ in range(N):
                recv()
    else:
        select_drain_path(prefer_libzmq=variant == "drain")

        def consume():
            read = 0
            while read < N:
                n = d.drain(pull, N - read)
                assert n > 0
                read += n

    try:
        benchmark.pedantic(consume, setup=lambda: prefill(push, pull, frame),
                           rounds=ROUNDS, iterations=1)
        drain_path = envelope.DRAIN_PATH.value
    finally:
        select_drain_path()
    assert not pull.poll(0, zmq.POLLIN)  # every pre-filled frame was consumed
    if variant != "raw_recv":
        assert d.counters()["dispatched"] == N * ROUNDS
        benchmark.extra_info["drain_path"] = drain_path
    benchmark.extra_info["msgs_per_s"] = N / benchmark.stats.stats.median
    record(benchmark, "zmq drain of 200k x 100 B", variant, N)
