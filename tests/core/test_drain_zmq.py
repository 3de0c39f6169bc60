"""Dispatcher.drain over real ZeroMQ PUSH/PULL sockets (tcp on loopback; inproc where a
test counts what one drain takes), on every drain path the build has (the compiled
build: libzmq directly, and the pyzmq fallback)."""
import pytest

zmq = pytest.importorskip("zmq")

import corral._core as core  # noqa: E402
from corral._core.envelope import (DispatchError, Dispatcher, DrainPath, encode, encode_batch,  # noqa: E402
                                   select_drain_path)

SENDER = b"tcp://127.0.0.1:15050"
PATHS = [True, False] if core.CORE == "cython" else [True]


@pytest.fixture(params=PATHS, ids=lambda prefer: "libzmq" if prefer else "pyzmq")
def path(request):
    chosen = select_drain_path(prefer_libzmq=request.param)
    yield chosen
    select_drain_path()


@pytest.fixture
def pair():
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(f"tcp://127.0.0.1:{port}")
    yield push, pull
    push.close()
    pull.close()
    ctx.term()


@pytest.fixture
def queued_pair():
    """A PUSH/PULL pair over inproc: once the first frame sent is readable, every frame
    sent before the poll is queued at the PULL socket (over tcp the rest may still be on
    the way, so tests that count what one drain takes would race the network)."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("inproc://drain-limits")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect("inproc://drain-limits")
    yield push, pull
    push.close()
    pull.close()
    ctx.term()


def fill(push, pull, frames):
    """Send ``frames`` plus an end marker (type 0xFFFE, dispatched to a no-op by the tests)
    and wait (poll, no sleeps) until the first is readable; return how many were sent.
    drain_all() polls again whenever the queue is momentarily empty."""
    for frame in frames:
        push.send(frame)
    push.send(encode(0xFFFE, 0, b"", b"end-of-fill"))
    assert pull.poll(5000, zmq.POLLIN)
    return len(frames) + 1


def test_build_picks_expected_path():
    chosen = select_drain_path()
    if core.CORE == "cython":
        assert chosen is DrainPath.LIBZMQ, core.envelope.DRAIN_FALLBACK_REASON
        assert core.envelope.DRAIN_FALLBACK_REASON == ""
    else:
        assert chosen is DrainPath.PYZMQ
        assert core.envelope.DRAIN_FALLBACK_REASON
    assert core.envelope.DRAIN_PATH is chosen


def test_fallback_is_reported(caplog):
    if core.CORE != "cython":
        pytest.skip("only the compiled build has a libzmq path to fall back from")
    assert select_drain_path(prefer_libzmq=False) is DrainPath.PYZMQ
    assert core.envelope.DRAIN_PATH is DrainPath.PYZMQ
    assert "disabled" in core.envelope.DRAIN_FALLBACK_REASON
    assert select_drain_path() is DrainPath.LIBZMQ


def recording_dispatcher():
    """(envelopes of type 1 in the order dispatched, a dispatcher recording them; the end
    marker of `fill` goes to a no-op)."""
    got = []
    d = Dispatcher()
    d.register(1, got.append)
    d.register(0xFFFE, lambda env: None)
    return got, d


def drain_all(d, pull, expected, limit=1000):
    read = 0
    while read < expected:
        n = d.drain(pull, limit)
        if n == 0:
            assert pull.poll(5000, zmq.POLLIN)
        read += n
    return read


def test_drain_dispatches_everything_in_order(path, pair):
    push, pull = pair
    got, d = recording_dispatcher()
    frames = [encode(1, i, SENDER, b"b%d" % i) for i in range(500)]
    total = fill(push, pull, frames)
    assert drain_all(d, pull, total) == total
    assert [(e.seq, e.sender, e.body) for e in got] == [(i, SENDER, b"b%d" % i)
                                                         for i in range(500)]
    assert d.drain(pull, 100) == 0  # empty: returns at once, no blocking
    assert d.counters()["received"] == total and d.counters()["dispatched"] == total


def test_drain_stops_at_limit(path, queued_pair):
    push, pull = queued_pair
    got, d = recording_dispatcher()
    total = fill(push, pull, [encode(1, i, SENDER, b"") for i in range(10)])
    assert d.drain(pull, 4) == 4
    assert [e.seq for e in got] == [0, 1, 2, 3]
    assert d.drain(pull, 0) == 0
    assert drain_all(d, pull, total - 4) == total - 4
    assert [e.seq for e in got] == list(range(10))


def test_drain_limit_counts_the_envelopes_of_batch_frames(path, queued_pair):
    push, pull = queued_pair
    got, d = recording_dispatcher()
    batches = [encode_batch([encode(1, 3 * b + i, SENDER, b"") for i in range(3)]) for b in range(3)]
    assert fill(push, pull, batches + [encode(1, 9, SENDER, b"")]) == 5  # with fill's end marker
    assert d.drain(pull, 5) == 2  # 3 envelopes, then 3 more cross the limit of 5: two frames
    assert [e.seq for e in got] == list(range(6))
    assert d.drain(pull, 1) == 1  # a batch frame is always finished
    assert [e.seq for e in got] == list(range(9))
    assert d.drain(pull, 5) == 2 and [e.seq for e in got] == list(range(10))


def test_drain_limit_counts_big_frames_by_their_size(path, queued_pair):
    """A frame counts at least one unit per 256 bytes: a message of many rows is much
    work in one envelope, and the loop must get to sending what it produced."""
    push, pull = queued_pair
    got, d = recording_dispatcher()
    big = [encode(1, i, SENDER, b"x" * 2048) for i in range(4)]  # about 8 units each
    assert fill(push, pull, big) == 5
    assert d.drain(pull, 8) == 1  # the first frame fills the limit
    assert d.drain(pull, 9) == 2  # the second crosses it and is finished
    assert [e.seq for e in got] == [0, 1, 2]
    assert d.drain(pull, 1000) == 2


def test_drain_bad_input_counted(path, pair):
    push, pull = pair
    errors = []
    got = []
    d = Dispatcher(max_frame_size=200, on_error=lambda k, detail, exc: errors.append(k))
    d.register(1, got.append)
    d.register(0xFFFE, lambda env: None)

    def bad(env):
        raise ValueError("handler bug")

    d.register(2, bad)
    frames = [
        b"garbage",
        encode(1, 1, SENDER, b"x" * 300),  # oversized
        encode(9, 2, SENDER, b""),  # unknown type
        encode(2, 3, SENDER, b""),  # handler raises
        encode_batch([encode(1, 4, SENDER, b""), encode(1, 5, SENDER, b"")]),
        b"",  # empty frame
        encode(1, 6, SENDER, b""),
    ]
    total = fill(push, pull, frames)
    assert drain_all(d, pull, total) == total
    assert [e.seq for e in got] == [4, 5, 6]
    assert errors == [DispatchError.MALFORMED, DispatchError.OVERSIZED,
                      DispatchError.UNKNOWN_TYPE, DispatchError.HANDLER_FAILED,
                      DispatchError.MALFORMED]
    assert d.counters() == {"received": total, "dispatched": 4, "malformed": 2,
                            "unknown_type": 1, "oversized": 1, "handler_failed": 1, "refused": 0}


def test_drain_closed_socket_raises_zmq_error(path, pair):
    push, pull = pair
    pull.close()
    with pytest.raises(zmq.ZMQError):
        Dispatcher().drain(pull, 10)


def test_drain_wrong_socket_type_raises_zmq_error(path, pair):
    push, pull = pair
    # a PUSH socket cannot receive: libzmq's error (not EAGAIN) surfaces as pyzmq's
    with pytest.raises(zmq.ZMQError):
        Dispatcher().drain(push, 10)


def test_drain_accepts_socket_like_objects_without_underlying(path):
    class FakeSocket:
        def __init__(self, frames):
            self.frames = list(frames)
            self.flags = []

        def recv(self, flags=0):
            self.flags.append(flags)
            if not self.frames:
                raise zmq.Again()
            return self.frames.pop(0)

    got = []
    d = Dispatcher()
    d.register(1, got.append)
    sock = FakeSocket([encode(1, 1, b"", b""), encode(1, 2, b"", b"")])
    assert d.drain(sock, 10) == 2
    assert [e.seq for e in got] == [1, 2]
    assert set(sock.flags) == {zmq.NOBLOCK}


def test_handler_closing_the_socket_stops_the_drain(path, pair):
    push, pull = pair
    got = []
    d = Dispatcher()

    def close_on_second(env):
        got.append(env.seq)
        if env.seq == 1:
            pull.close()

    d.register(1, close_on_second)
    fill(push, pull, [encode(1, i, SENDER, b"") for i in range(5)])
    with pytest.raises(zmq.ZMQError):  # the next receive reports the closed socket
        d.drain(pull, 100)
    assert got == [0, 1]
