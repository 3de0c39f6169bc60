"""Dispatcher.drain on CurveZMQ connections (`Dispatcher.authenticate`), on every drain
path the build has: each frame's principal (ZeroMQ's User-Id, set by the ZAP gate)
reaches the sink before the frame's envelopes are handled; frames without one, or of a
revoked principal, are dropped and counted, also on a connection made before the
principal was revoked."""
import pytest

zmq = pytest.importorskip("zmq")

import corral._core as core  # noqa: E402
from corral._core.envelope import DispatchError, Dispatcher, encode, encode_batch, select_drain_path  # noqa: E402
from corral.security.links import KeyTable  # noqa: E402
from corral.security.zap import CurveGate  # noqa: E402

PATHS = [True, False] if core.CORE == "cython" else [True]


@pytest.fixture(params=PATHS, ids=lambda prefer: "libzmq" if prefer else "pyzmq")
def path(request):
    chosen = select_drain_path(prefer_libzmq=request.param)
    yield chosen
    select_drain_path()


class Sink:
    principal = None


@pytest.fixture
def curve():
    """A CURVE server PULL socket behind a gate that admits "alice" and "bob", and a
    way to connect clients to it with a key of their own."""
    ctx = zmq.Context()
    server_public, server_secret = zmq.curve_keypair()
    pairs = {name: zmq.curve_keypair() for name in ("alice", "bob", "mallory")}
    gate = CurveGate(ctx, KeyTable({pairs["alice"][0]: "alice", pairs["bob"][0]: "bob"})).start()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.curve_server = True
    pull.curve_secretkey = server_secret
    pull.curve_publickey = server_public
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    clients = []

    def connect(name, curve=True):
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        if curve:
            push.curve_serverkey = server_public
            push.curve_publickey, push.curve_secretkey = pairs[name]
        push.connect(f"tcp://127.0.0.1:{port}")
        clients.append(push)
        return push

    yield pull, connect, gate
    for sock in [*clients, pull]:
        sock.close()
    gate.stop()
    ctx.term()


def drain_until(d, pull, count, handled):
    while len(handled) < count:
        assert pull.poll(5000), f"only {len(handled)} of {count} envelopes arrived"
        d.drain(pull, 1024)


def test_each_frame_carries_its_connections_principal(path, curve):
    pull, connect, gate = curve
    sink = Sink()
    seen = []
    errors = []
    d = Dispatcher(on_error=lambda kind, detail, exc: errors.append(kind))
    d.register(7, lambda env: seen.append((sink.principal, env.body)))
    d.authenticate(sink)
    alice, bob = connect("alice"), connect("bob")
    for i in range(3):
        alice.send(encode(7, i, b"forged-sender", b"a%d" % i))
        bob.send(encode_batch([encode(7, i, b"", b"b%d" % i), encode(7, i, b"", b"b%d'" % i)]))
    drain_until(d, pull, 9, seen)
    assert sorted(b for p, b in seen if p == "alice") == [b"a0", b"a1", b"a2"]
    assert sorted(b for p, b in seen if p == "bob") == [b"b0", b"b0'", b"b1", b"b1'", b"b2", b"b2'"]
    assert d.counters()["refused"] == 0 and errors == []


def test_interleaved_connections_keep_their_principals_as_one_object_each(path, curve):
    """More connections than the drain remembers (PEERS_TAKEN), their frames taken in
    turn: each frame gets its own connection's principal, always the same str object
    for a principal (the engines compare principals by identity first)."""
    from corral._core.envelope import PEERS_TAKEN

    pull, connect, gate = curve
    sink = Sink()
    seen = []
    d = Dispatcher()
    d.register(7, lambda env: seen.append((sink.principal, env.body)))
    d.authenticate(sink)
    names = ["alice" if i % 2 else "bob" for i in range(PEERS_TAKEN + 3)]
    clients = [connect(name) for name in names]
    for round_ in range(20):
        for i, client in enumerate(clients):
            client.send(encode(7, round_, b"", b"%s/%d/%d" % (names[i].encode(), i, round_)))
    drain_until(d, pull, 20 * len(clients), seen)
    assert all(body.startswith(principal.encode() + b"/") for principal, body in seen)
    assert len({id(principal) for principal, _ in seen}) == 2
    assert d.counters()["refused"] == 0


def test_a_revoked_principal_is_refused_on_its_open_connection(path, curve):
    pull, connect, gate = curve
    sink = Sink()
    seen = []
    errors = []
    d = Dispatcher(on_error=lambda kind, detail, exc: errors.append((kind, detail)))
    d.register(7, lambda env: seen.append((sink.principal, env.body)))
    d.authenticate(sink)
    alice, bob = connect("alice"), connect("bob")
    alice.send(encode(7, 1, b"", b"before"))
    drain_until(d, pull, 1, seen)
    d.revoke({"alice"})  # alice's key revoked: her connection stays up, her frames do not count
    for i in range(5):
        alice.send(encode(7, i, b"", b"after"))
    bob.send(encode(7, 9, b"", b"bob"))
    drain_until(d, pull, 2, seen)
    while d.counters()["refused"] < 5:
        assert pull.poll(5000)
        d.drain(pull, 1024)
    assert seen == [("alice", b"before"), ("bob", b"bob")]
    assert d.counters()["refused"] == 5 and d.counters()["received"] == 7
    # reported once per run of frames from one connection, naming the principal
    assert errors and all(kind is DispatchError.REFUSED and "'alice'" in detail for kind, detail in errors)
    assert len(errors) <= 2


def test_an_unknown_key_never_gets_a_frame_through(path, curve):
    pull, connect, gate = curve
    sink = Sink()
    seen = []
    d = Dispatcher()
    d.register(7, lambda env: seen.append((sink.principal, env.body)))
    d.authenticate(sink)
    connect("mallory").send(encode(7, 1, b"", b"inject"))
    connect("alice").send(encode(7, 2, b"", b"hello"))
    drain_until(d, pull, 1, seen)
    assert not pull.poll(300)
    assert seen == [("alice", b"hello")]
    assert gate.refusals >= 1
