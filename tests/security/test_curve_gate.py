"""CurveZMQ links on real ZeroMQ sockets over loopback: known keys are admitted and their
frames carry the principal; unknown keys never get a frame through; a revoked key is
refused from the next connection on."""
from __future__ import annotations

import os

import pytest
import zmq

from corral.security.keys import KeyFileError, KeyRing, generate, load_pair
from corral.security.zap import CurveGate, client_socket_options, server_socket_options


@pytest.fixture
def keys(tmp_path):
    folder = tmp_path / "keys"
    generate(folder, ["master", "agent1", "stranger"])
    ring_dir = tmp_path / "ring"
    ring_dir.mkdir()
    (ring_dir / "agent1.key").write_bytes((folder / "agent1.key").read_bytes())
    return folder, ring_dir


def server(ctx: zmq.Context, pair) -> tuple[zmq.Socket, str]:
    sock = ctx.socket(zmq.PULL)
    for option, value in server_socket_options(pair).items():
        sock.setsockopt(option, value)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def send_from(ctx: zmq.Context, pair, server_public: bytes, endpoint: str, payload: bytes) -> zmq.Socket:
    sock = ctx.socket(zmq.PUSH)
    sock.linger = 0
    for option, value in client_socket_options(pair, server_public).items():
        sock.setsockopt(option, value)
    sock.connect(endpoint)
    sock.send(payload)
    return sock


def test_known_keys_are_admitted_with_their_principal_and_unknown_ones_refused(keys):
    folder, ring_dir = keys
    ctx = zmq.Context()
    gate = CurveGate(ctx, KeyRing(ring_dir)).start()
    master = load_pair(folder / "master.key_secret")
    pull, endpoint = server(ctx, master)
    try:
        stranger = send_from(ctx, load_pair(folder / "stranger.key_secret"), master.public, endpoint, b"inject")
        agent = send_from(ctx, load_pair(folder / "agent1.key_secret"), master.public, endpoint, b"hello")
        assert pull.poll(10_000)
        frame = pull.recv(copy=False)
        assert frame.bytes == b"hello" and frame.get("User-Id") == "agent1"
        assert not pull.poll(300)  # the stranger's frame never arrives
        assert gate.refusals >= 1
        # revoke: the agent's next connection is refused
        os.remove(ring_dir / "agent1.key")
        agent.close()
        again = send_from(ctx, load_pair(folder / "agent1.key_secret"), master.public, endpoint, b"after revoke")
        assert not pull.poll(500)
        refusals = gate.refusals
        # admit a new key without a restart
        (ring_dir / "stranger.key").write_bytes((folder / "stranger.key").read_bytes())
        late = send_from(ctx, load_pair(folder / "stranger.key_secret"), master.public, endpoint, b"now known")
        assert pull.poll(10_000)
        frame = pull.recv(copy=False)
        assert frame.get("User-Id") == "stranger" and frame.bytes in (b"inject", b"now known")
        assert refusals >= 2
        for s in (stranger, again, late):
            s.close()
    finally:
        pull.close()
        gate.stop()
        ctx.term()


def test_key_files_and_rings_that_cannot_be_used_are_named(tmp_path):
    generate(tmp_path, ["one"])
    with pytest.raises(KeyFileError, match="one.key exists already"):
        generate(tmp_path, ["one"])
    with pytest.raises(KeyFileError, match="invalid principal name"):
        generate(tmp_path, ["../evil"])
    bad = tmp_path / "ring.json"
    bad.write_text('{"ops": "short"}')
    with pytest.raises(KeyFileError, match="ops"):
        KeyRing(bad)
    with pytest.raises(KeyFileError, match="missing"):
        KeyRing(tmp_path / "missing")
