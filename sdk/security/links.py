"""CurveZMQ on a process's links: what its transport needs to encrypt and authenticate
them (`CurveLinks`), the in-memory key directory (`KeyTable`), and the credential a
driver, agent or CLI takes to talk to a secured master (`Credential`).

Every corral process has one key pair, for its server socket (the PULL socket its peers
connect to) and for its client sockets (one PUSH socket per peer). Its server admits
the clients whose public keys its directory knows (the ZAP gate, `corral.security.zap`),
and each client must know the public key of the server it connects to
(`CurveLinks.server_key`): an agent, driver or CLI knows the master's; the master knows
each registered peer's from its key ring, by the principal that registered there.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from corral.security.keys import KeyDirectory, KeyFileError, KeyPair, KeyRing, load_pair

if TYPE_CHECKING:
    from corral.security.zap import CurveGate

#: the principal under which agents, drivers and CLIs admit the master's key
MASTER_PRINCIPAL = "master"
#: the principal under which an executor admits its agent's key
AGENT_PRINCIPAL = "agent"
#: the environment variables that name a process's key pair and the master's public key
KEY_ENV = "CORRAL_KEY"
MASTER_KEY_ENV = "CORRAL_MASTER_KEY"
#: what an agent hands each executor it launches: the executor's own key pair (its
#: secret key, Z85) and the agent's public key (Z85)
EXECUTOR_KEY_ENV = "CORRAL_EXECUTOR_KEY"
AGENT_KEY_ENV = "CORRAL_AGENT_KEY"


class KeyTable:
    """Public keys (Z85) -> principals, held in memory: the master's key on an agent or
    a driver, an agent's executors' keys. Thread-safe (the ZAP gate reads it on its own
    thread while the I/O thread adds and removes keys)."""

    def __init__(self, keys: Mapping[bytes, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[bytes, str] = dict(keys or {})

    def add(self, public_key: bytes, principal: str) -> None:
        with self._lock:
            self._keys[public_key] = principal

    def remove(self, public_key: bytes) -> None:
        with self._lock:
            self._keys.pop(public_key, None)

    def principal_of(self, public_key: bytes) -> str | None:
        with self._lock:
            return self._keys.get(public_key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


@dataclass(frozen=True)
class CurveLinks:
    """What a `Transport` needs to run every link over CurveZMQ."""

    #: this process's key pair (with its secret key)
    own: KeyPair
    #: who may connect (their frames carry the principal this directory names)
    admits: KeyDirectory
    #: the Z85 public key of the server at a transport address; None when unknown
    #: (then nothing can be sent there: the frames are dropped and counted)
    server_key: Callable[[str], bytes | None]

    def __post_init__(self) -> None:
        if self.own.secret is None:
            raise KeyFileError("a CurveZMQ link needs a key pair with its secret key (a .key_secret file)")


@dataclass(frozen=True)
class Credential:
    """A process's key pair and the master's public key: what an agent, a scheduler
    driver or the CLI needs to talk to a secured master."""

    pair: KeyPair
    master_key: bytes

    @classmethod
    def load(cls, key_file: str | os.PathLike[str], master_key_file: str | os.PathLike[str]) -> Credential:
        """From a `NAME.key_secret` file and the master's `.key` file (KeyFileError
        naming the file that cannot be used)."""
        pair = load_pair(key_file)
        if pair.secret is None:
            raise KeyFileError(f"key file {key_file} holds no secret key: give the NAME.key_secret file")
        return cls(pair, load_pair(master_key_file).public)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Credential | None:
        """From CORRAL_KEY and CORRAL_MASTER_KEY (files); None when CORRAL_KEY is not
        set; KeyFileError when only one is, or a file cannot be used."""
        env = os.environ if environ is None else environ
        key, master_key = env.get(KEY_ENV), env.get(MASTER_KEY_ENV)
        if not key and not master_key:
            return None
        if not key or not master_key:
            missing = KEY_ENV if not key else MASTER_KEY_ENV
            raise KeyFileError(f"{missing} is not set: a secured client needs both {KEY_ENV} (its key pair) and "
                               f"{MASTER_KEY_ENV} (the master's public key)")
        return cls.load(Path(key), Path(master_key))

    def links(self, admits: KeyDirectory | None = None,
              server_key: Callable[[str], bytes | None] | None = None) -> CurveLinks:
        """Links that admit the master (or `admits`) and reach every peer with the
        master's key (or as `server_key` says)."""
        master_key = self.master_key
        return CurveLinks(self.pair, admits or KeyTable({master_key: MASTER_PRINCIPAL}),
                          server_key or (lambda _address: master_key))


def principal_key(ring: KeyRing, gate: CurveGate, principal: str) -> bytes | None:
    """The key to reach a process of `principal` with: the one it last connected with
    while the ring still holds it, else the ring's first key of the principal (None:
    the ring holds none)."""
    keys = ring.keys_of(principal)
    last = gate.last_key.get(principal)
    if last is not None and last in keys:
        return last
    return keys[0] if keys else None
