"""The ZAP handler that admits CurveZMQ peers by their public key (pyzmq's `zmq.auth`).

One `CurveGate` per ZeroMQ context (ZeroMQ allows one ZAP handler a context). A peer
whose key is in the gate's directory (a `KeyRing`, or a `corral.security.links.KeyTable`)
is admitted, and ZeroMQ stamps every frame it sends with the key's principal as its
User-Id, which the transport hands to the engines. Any other peer is refused during the
handshake: nothing it sends is ever received. Refusals are counted and logged with the
peer's address.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from corral.security.keys import KeyDirectory

log = logging.getLogger(__name__)


class _RingAuthenticator(ThreadAuthenticator):
    """pyzmq's threaded authenticator, asking the key ring for each CURVE handshake."""

    def __init__(self, context: zmq.Context, gate: "CurveGate") -> None:
        super().__init__(context, log=logging.getLogger("corral.security.zap.pyzmq"))
        self._gate = gate
        self._address = ""

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
        await super().handle_zap_message(msg)

    def callback(self, _domain: str, z85_key: bytes) -> bool:  # the credentials provider
        principal = self._gate.directory.principal_of(z85_key)
        if principal is not None:
            self._gate.last_key[principal] = z85_key
            return True
        self._gate.refused(self._address, z85_key)
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._gate.directory.principal_of(z85.encode(client_public_key)) or ""


class CurveGate:
    """Admits the keys `directory` knows on every CURVE server socket of `context`."""

    def __init__(self, context: zmq.Context, directory: KeyDirectory) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        #: handshakes refused (unknown key)
        self.refusals = 0
        #: principal -> the Z85 key it last connected with
        self.last_key: dict[str, bytes] = {}
        self._auth = _RingAuthenticator(context, self)

    def start(self) -> "CurveGate":
        self._auth.start()
        self._auth.configure_curve_callback("*", credentials_provider=self._auth)
        return self

    def refused(self, address: str, z85_key: bytes) -> None:
        with self._lock:
            self.refusals += 1
        log.warning("refused a connection from %s: unknown CurveZMQ key %s", address or "(unknown address)",
                    z85_key.decode("ascii", "replace"))

    def stop(self) -> None:
        self._auth.stop()


def server_socket_options(secret_pair: Any) -> dict[int, Any]:
    """The options that make a socket a CURVE server with `secret_pair` (a KeyPair)."""
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_SECRETKEY: secret_pair.secret, zmq.CURVE_PUBLICKEY: secret_pair.public}


def client_socket_options(own_pair: Any, server_public: bytes) -> dict[int, Any]:
    """The options that make a socket a CURVE client of the server whose key is given."""
    return {zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: own_pair.public,
            zmq.CURVE_SECRETKEY: own_pair.secret}
