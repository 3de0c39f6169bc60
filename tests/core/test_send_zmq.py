"""send_frame / encode_and_send over real ZeroMQ PUSH/PULL sockets on loopback, on every
send path the build has (the compiled build: libzmq directly, and the pyzmq fallback),
the pure-Python twin against the compiled build, and Transport on top of them."""
import logging

import pytest

zmq = pytest.importorskip("zmq")

import corral._core as core  # noqa: E402
from corral.net.transport import Transport  # noqa: E402
from corral._core.envelope import BATCH_TYPE, Dispatcher, EnvelopeError, decode, encode  # noqa: E402
from corral._core.send import SendPath, encode_and_send, select_send_path, send_frame  # noqa: E402

SENDER = b"tcp://127.0.0.1:15050"
PATHS = [True, False] if core.CORE == "cython" else [True]
RECV_TIMEOUT_MS = 5000
# sizes around libzmq's inline-message limit (33), the copy threshold and beyond
SIZES = [0, 1, 33, 34, 100, 4096, core.send.SEND_COPY_THRESHOLD - 1,
         core.send.SEND_COPY_THRESHOLD, core.send.SEND_COPY_THRESHOLD + (1 << 20)]


@pytest.fixture(params=PATHS, ids=lambda prefer: "libzmq" if prefer else "pyzmq")
def path(request):
    chosen = select_send_path(prefer_libzmq=request.param)
    yield chosen
    select_send_path()


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def make_pair(ctx, sndhwm=1000, rcvhwm=1000):
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, rcvhwm)
    pull.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, sndhwm)
    push.connect(f"tcp://127.0.0.1:{port}")
    return push, pull


@pytest.fixture
def pair(ctx):
    return make_pair(ctx)


def send_blocking(send, *args):
    """Call a non-blocking send until it is taken (the peer may still be connecting);
    waits on POLLOUT between tries, never sleeps."""
    sock = args[0]
    for _ in range(100):
        if send(*args):
            return
        assert sock.poll(RECV_TIMEOUT_MS, zmq.POLLOUT)
    raise AssertionError("the frame was never taken")


def test_build_picks_expected_send_path():
    chosen = select_send_path()
    if core.CORE == "cython":
        assert chosen is SendPath.LIBZMQ, core.send.SEND_FALLBACK_REASON
        assert core.send.SEND_FALLBACK_REASON == ""
    else:
        assert chosen is SendPath.PYZMQ
        assert core.send.SEND_FALLBACK_REASON
    assert core.send.SEND_PATH is chosen


def test_send_fallback_is_reported():
    if core.CORE != "cython":
        pytest.skip("only the compiled build has a libzmq path to fall back from")
    assert select_send_path(prefer_libzmq=False) is SendPath.PYZMQ
    assert core.send.SEND_PATH is SendPath.PYZMQ
    assert "disabled" in core.send.SEND_FALLBACK_REASON
    assert select_send_path() is SendPath.LIBZMQ


def test_frames_arrive_intact_and_in_order(path, pair):
    push, pull = pair
    frames = [bytes((i + j) & 0xFF for j in range(size)) for i, size in enumerate(SIZES)]
    send_blocking(send_frame, push, frames[0])
    for frame in frames[1:]:
        assert send_frame(push, frame) is True
    assert [pull.recv() for _ in frames] == frames


def test_send_frame_takes_any_buffer(path, pair):
    push, pull = pair
    send_blocking(send_frame, push, b"first")
    assert send_frame(push, bytearray(b"a bytearray")) is True
    assert send_frame(push, memoryview(b"a memoryview")) is True
    assert [pull.recv() for _ in range(3)] == [b"first", b"a bytearray", b"a memoryview"]


def test_encode_and_send_matches_encode(path, pair):
    push, pull = pair
    cases = [(0, 0, b"", b""), (1, 7, SENDER, b"body"), (0xFFFE, 0xFFFFFFFF, SENDER, b"x" * 1000),
             (300, 70000, b"s" * 0xFFFF, b""), (5, 1, SENDER, b"y" * (1 << 17))]
    send_blocking(encode_and_send, push, *cases[0])
    for case in cases[1:]:
        assert encode_and_send(push, *case) is True
    for case in cases:
        frame = pull.recv()
        assert frame == encode(*case)
        env = decode(frame)
        assert (env.type, env.seq, env.sender, env.body) == case


def test_encode_and_send_rejects_bad_fields_before_sending(path, pair):
    push, pull = pair
    with pytest.raises(EnvelopeError):
        encode_and_send(push, BATCH_TYPE, 1, SENDER, b"")
    with pytest.raises(EnvelopeError):
        encode_and_send(push, 1, -1, SENDER, b"")
    with pytest.raises(TypeError):
        encode_and_send(push, 1, 1, "not bytes", b"")
    with pytest.raises(TypeError):
        encode_and_send(push, 1, 1, SENDER, None)
    send_blocking(send_frame, push, b"marker")
    assert pull.recv() == b"marker"  # nothing was sent before it


def test_no_peer_is_eagain_false(path, ctx):
    push = ctx.socket(zmq.PUSH)  # never connected: nowhere to queue
    push.setsockopt(zmq.LINGER, 0)
    assert send_frame(push, b"frame") is False
    assert encode_and_send(push, 1, 1, SENDER, b"body") is False
    immediate = ctx.socket(zmq.PUSH)  # connecting, but IMMEDIATE queues nothing until done
    immediate.setsockopt(zmq.LINGER, 0)
    immediate.setsockopt(zmq.IMMEDIATE, 1)
    immediate.connect("tcp://127.0.0.1:9")  # discard port: nothing listens
    assert send_frame(immediate, b"frame") is False
    assert send_frame(immediate, b"x" * (1 << 17)) is False  # pyzmq zero-copy size too


@pytest.mark.parametrize("size", [100, 60000])
@pytest.mark.parametrize("how", ["send_frame", "encode_and_send"])
def test_full_peer_queue_is_eagain_false(path, ctx, how, size):
    """SNDHWM=1 towards a peer that does not read: sends are taken until every queue
    and socket buffer on the way is full, then return False. Exactly the frames that
    returned True arrive, in order."""
    push, pull = make_pair(ctx, sndhwm=1, rcvhwm=1)
    body = b"b" * size
    taken = []
    if how == "send_frame":
        def send(seq):
            return send_frame(push, encode(1, seq, SENDER, body))
    else:
        def send(seq):
            return encode_and_send(push, 1, seq, SENDER, body)
    assert push.poll(RECV_TIMEOUT_MS, zmq.POLLOUT)  # connected
    refused = 0
    for seq in range(200_000):
        if send(seq):
            taken.append(seq)
        else:
            refused += 1
            if refused >= 100 and len(taken) > 0:
                break
    assert refused >= 100 and taken, "the queue never filled up"
    got = [decode(pull.recv()).seq for _ in taken]
    assert got == taken
    send_blocking(send_frame, push, b"marker")
    assert pull.recv() == b"marker"  # nothing refused was queued after all


def test_closed_socket_raises_zmq_error(path, ctx):
    push = ctx.socket(zmq.PUSH)
    push.close()
    with pytest.raises(zmq.ZMQError) as raised:
        send_frame(push, b"frame")
    assert raised.value.errno == zmq.ENOTSOCK
    with pytest.raises(zmq.ZMQError) as raised:
        encode_and_send(push, 1, 1, SENDER, b"body")
    assert raised.value.errno == zmq.ENOTSOCK


def test_wrong_socket_type_raises_zmq_error(path, pair):
    push, pull = pair
    # a PULL socket cannot send: libzmq's error (not EAGAIN) surfaces as pyzmq's
    with pytest.raises(zmq.ZMQError) as raised:
        send_frame(pull, b"frame")
    assert raised.value.errno == zmq.ENOTSUP
    with pytest.raises(zmq.ZMQError):
        encode_and_send(pull, 1, 1, SENDER, b"body")


class SpySocket(zmq.Socket):
    """A pyzmq socket that records the frames that went through its Python ``send``."""

    python_sends = None  # declared here: pyzmq treats unknown attributes as socket options

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.python_sends = []

    def send(self, data, flags=0, copy=True, **kwargs):
        self.python_sends.append((len(data), flags, copy))
        return super().send(data, flags, copy=copy, **kwargs)


def test_which_frames_bypass_pyzmq(path, ctx):
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH, socket_class=SpySocket)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(f"tcp://127.0.0.1:{port}")
    assert push.poll(RECV_TIMEOUT_MS, zmq.POLLOUT)
    big = core.send.SEND_COPY_THRESHOLD
    assert send_frame(push, b"small")
    assert encode_and_send(push, 1, 1, SENDER, b"small")
    assert send_frame(push, b"b" * big)
    assert encode_and_send(push, 1, 2, SENDER, b"b" * big)
    assert [len(pull.recv()) for _ in range(4)] == [
        5, 12 + len(SENDER) + 5, big, 12 + len(SENDER) + big]
    large = [(big, zmq.NOBLOCK, False), (12 + len(SENDER) + big, zmq.NOBLOCK, False)]
    if core.send.SEND_PATH is SendPath.LIBZMQ:
        assert push.python_sends == large  # only large frames take pyzmq's zero-copy send
    else:
        assert push.python_sends == [(5, zmq.NOBLOCK, True),
                                     (12 + len(SENDER) + 5, zmq.NOBLOCK, True)] + large


def test_socket_like_objects_without_underlying(path):
    class FakeSocket:
        def __init__(self, room):
            self.room = room
            self.sent = []

        def send(self, frame, flags=0, copy=True):
            assert flags == zmq.NOBLOCK
            if not self.room:
                raise zmq.Again()
            self.room -= 1
            self.sent.append(bytes(frame))

    sock = FakeSocket(room=2)
    assert send_frame(sock, b"one") is True
    assert encode_and_send(sock, 1, 2, SENDER, b"two") is True
    assert send_frame(sock, b"three") is False
    assert sock.sent == [b"one", encode(1, 2, SENDER, b"two")]


def test_pure_and_compiled_agree(ctx):
    """The pure-Python twin and the build in use send the same bytes, refuse the same
    sends and raise the same errors."""
    pure = core.load_pure().send
    impls = [core.send] if pure is core.send else [core.send, pure]
    push, pull = make_pair(ctx)
    results = []
    for mod in impls:
        nowhere = ctx.socket(zmq.PUSH)
        nowhere.setsockopt(zmq.LINGER, 0)
        closed = ctx.socket(zmq.PUSH)
        closed.close()
        send_blocking(mod.send_frame, push, b"start")
        sent = [mod.send_frame(push, b"frame %d" % i) for i in range(3)]
        sent += [mod.encode_and_send(push, 9, i, SENDER, b"body %d" % i) for i in range(3)]
        errors = []
        for call in (lambda: mod.send_frame(closed, b"x"),
                     lambda: mod.encode_and_send(closed, 1, 1, SENDER, b"x"),
                     lambda: mod.send_frame(pull, b"x")):
            with pytest.raises(zmq.ZMQError) as raised:
                call()
            errors.append(raised.value.errno)
        results.append((
            sent,
            [pull.recv() for _ in range(7)],
            mod.send_frame(nowhere, b"x"),
            mod.encode_and_send(nowhere, 1, 1, SENDER, b"x"),
            errors,
        ))
        nowhere.close()
    assert results[0][0] == [True] * 6
    assert results[0][1][1:] == [b"frame 0", b"frame 1", b"frame 2"] + [
        encode(9, i, SENDER, b"body %d" % i) for i in range(3)]
    assert results[0][2:4] == (False, False)
    assert results[0][4] == [zmq.ENOTSOCK, zmq.ENOTSOCK, zmq.ENOTSUP]
    assert all(result == results[0] for result in results)


# Transport on top of the send path


@pytest.fixture
def transports(path):
    got = []
    rx_dispatcher = Dispatcher()
    rx_dispatcher.register(1, got.append)
    receiver = Transport("127.0.0.1", 0, rx_dispatcher)
    sender = Transport("127.0.0.1", 0, Dispatcher())
    yield sender, receiver, got
    sender.close()
    receiver.close()


def receive(receiver, got, count):
    while len(got) < count:
        assert receiver.wait(RECV_TIMEOUT_MS / 1000)
        receiver.drain()


def test_transport_send_counts_and_delivers(transports):
    sender, receiver, got = transports
    to = receiver.address
    assert sender.send(to, 1, b"first")  # connects; queued until the connection is up
    for i in range(100):
        assert sender.send(to, 1, b"m%d" % i)
    assert sender.send_frame(to, encode(1, 999, b"me", b"raw"))
    receive(receiver, got, 102)
    assert [e.body for e in got] == [b"first"] + [b"m%d" % i for i in range(100)] + [b"raw"]
    assert [e.seq for e in got[:101]] == list(range(1, 102))
    assert {e.sender for e in got[:101]} == {sender.address.encode()}
    assert (sender.counters.sent, sender.counters.dropped) == (102, 0)


def test_transport_bad_arguments_raise(transports):
    sender, receiver, _ = transports
    for _ in range(2):  # before and after the socket towards the peer exists
        with pytest.raises(EnvelopeError):
            sender.send(receiver.address, BATCH_TYPE, b"")
        with pytest.raises(TypeError):
            sender.send(receiver.address, 1, "not bytes")
        sender.send(receiver.address, 1, b"ok")
    assert sender.counters.sent == 2


def test_transport_full_peer_queue_drops(transports, monkeypatch):
    sender, receiver, got = transports
    monkeypatch.setattr("corral.net.transport.SEND_HWM", 1)
    to = receiver.address
    receiver._pull.setsockopt(zmq.RCVHWM, 1)  # only new connections see it; this is new
    assert sender.send(to, 1, b"first")
    assert sender._pushes[to].poll(RECV_TIMEOUT_MS, zmq.POLLOUT)
    results = [sender.send(to, 1, b"z" * 60000) for _ in range(5000)]
    assert False in results
    assert sender.counters.dropped == results.count(False)
    assert sender.counters.sent == 1 + results.count(True)


def test_transport_closed_drops(transports):
    sender, receiver, _ = transports
    sender.send(receiver.address, 1, b"x")
    sender.close()
    assert sender.send(receiver.address, 1, b"y") is False
    assert sender.send_frame(receiver.address, b"z") is False
    assert sender.counters.dropped == 2
    with pytest.raises(EnvelopeError):  # still checked when closed
        sender.send(receiver.address, BATCH_TYPE, b"")


def test_transport_unparseable_address_logged_and_dropped(transports, caplog):
    sender, _, _ = transports
    with caplog.at_level(logging.WARNING, logger="corral.net.transport"):
        assert sender.send("not an address", 1, b"x") is False
        assert sender.send_frame("tcp://", b"x") is False
    assert sender.counters.dropped == 2
    assert sum("cannot send to" in r.getMessage() for r in caplog.records) == 2
    assert sender._pushes == {}
