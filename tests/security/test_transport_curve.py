"""The transport over CurveZMQ (`Transport(curve=CurveLinks(...))`) on real sockets: a
known client's frames arrive with its principal; a plaintext peer and an unknown key
are refused and counted; frames towards an address without a server key are dropped
and counted; a peer whose server key changes is reached with the new one."""
from __future__ import annotations

import zmq

from corral._core.envelope import Dispatcher
from corral.net.transport import Transport
from corral.security.keys import KeyPair
from corral.security.links import CurveLinks, KeyTable
from corral.testing.cluster import wait_for


def pair() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public, secret)


class Inbox:
    """A dispatcher whose sink and handler record (principal, body) for type 7."""

    principal = None

    def __init__(self) -> None:
        self.got: list[tuple[str | None, bytes]] = []
        self.dispatcher = Dispatcher()
        self.dispatcher.register(7, lambda env: self.got.append((self.principal, env.body)))
        self.dispatcher.authenticate(self)


def pump(*transports: Transport, until, what: str) -> None:
    def step():
        for t in transports:
            if t.wait(0.01):
                t.drain()
        return until()

    wait_for(step, 10, what)


def test_known_clients_get_through_with_their_principal_strangers_are_counted():
    server_pair, agent_pair, stranger_pair = pair(), pair(), pair()
    inbox = Inbox()
    server = Transport("127.0.0.1", 0, inbox.dispatcher, curve=CurveLinks(
        server_pair, KeyTable({agent_pair.public: "agent-1"}), lambda _to: None))
    agent = Transport("127.0.0.1", 0, Dispatcher(), curve=CurveLinks(
        agent_pair, KeyTable(), lambda _to: server_pair.public))
    stranger = Transport("127.0.0.1", 0, Dispatcher(), curve=CurveLinks(
        stranger_pair, KeyTable(), lambda _to: server_pair.public))
    plaintext = Transport("127.0.0.1", 0, Dispatcher())
    try:
        plaintext.send(server.address, 7, b"plain")
        stranger.send(server.address, 7, b"stranger")
        agent.send(server.address, 7, b"hello")
        pump(server, until=lambda: inbox.got and server.curve_refused and server.counters.curve_failed,
             what="the agent's frame, the stranger's refusal and the plaintext handshake failure")
        assert inbox.got == [("agent-1", b"hello")]
        # nothing can be sent where no server key is known
        assert not server.send(agent.address, 7, b"reply")
        assert server.counters.no_server_key == 1 and server.counters.dropped == 1
    finally:
        for t in (server, agent, stranger, plaintext):
            t.close()


def test_a_peer_whose_server_key_changes_is_reached_with_the_new_one():
    server_pair, old_pair, new_pair = pair(), pair(), pair()
    keys = {}
    server = Transport("127.0.0.1", 0, Dispatcher(), curve=CurveLinks(
        server_pair, KeyTable(), lambda to: keys.get(to)))
    inbox = Inbox()
    # the peer listens with new_pair, but the server first believes it has old_pair
    peer = Transport("127.0.0.1", 0, inbox.dispatcher, curve=CurveLinks(
        new_pair, KeyTable({server_pair.public: "master"}), lambda _to: server_pair.public))
    keys[peer.address] = old_pair.public
    try:
        server.send(peer.address, 7, b"lost")  # made with the old key: the handshake fails
        assert server._server_keys[peer.address] == old_pair.public
        keys[peer.address] = new_pair.public  # e.g. another principal registered at that address
        pump(server, peer, until=lambda: peer.address not in server._pushes,
             what="the socket dropped once its handshake failed")
        server.send(peer.address, 7, b"found")
        pump(server, peer, until=lambda: inbox.got, what="the frame sent with the new key")
        assert inbox.got == [("master", b"found")]
    finally:
        server.close()
        peer.close()
