"""CurveZMQ key pairs and the map from public keys to principals.

`corral keys generate --out DIR NAME...` writes, for each NAME, `NAME.key` (the public
key, safe to hand out) and `NAME.key_secret` (the pair; keep it private), in ZeroMQ's
certificate format. A master is given its own pair and a `KeyRing`: a folder of public
`.key` files (the principal is the file's name without `.key`, unless the certificate's
metadata says `principal = ...`) or a JSON file `{"principal": "public key (Z85)", ...}`.
The ring is read again whenever the folder or file changes, so adding a file admits a
key and deleting it revokes the key, from the next connection on, without a restart.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: a principal: what ACLs and logs name (letters, digits and ._-, as file names allow)
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
log = logging.getLogger(__name__)
_Z85_KEY = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")


class KeyDirectory(Protocol):
    """Who holds a public key: what a ZAP gate asks for each CurveZMQ handshake."""

    def principal_of(self, public_key: bytes) -> str | None:
        """The principal of a Z85 public key; None when the key is not admitted."""


class KeyFileError(ValueError):
    """A key file or key ring that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CurveZMQ key pair, Z85-encoded as ZeroMQ takes them."""

    public: bytes
    secret: bytes | None


def check_principal(name: str) -> str:
    if not _PRINCIPAL.fullmatch(name):
        raise KeyFileError(f"invalid principal name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def generate(out: str | Path, names: list[str]) -> list[Path]:
    """Write a key pair for each name under `out`; returns the public key files. An
    existing pair is never overwritten (KeyFileError names it)."""
    import zmq.auth

    folder = Path(out)
    for name in names:
        check_principal(name)
        for existing in (folder / f"{name}.key", folder / f"{name}.key_secret"):
            if existing.exists():
                raise KeyFileError(f"{existing} exists already: remove it first to make a new key for {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        public, secret = zmq.auth.create_certificates(str(folder), name, metadata={"principal": name})
        os.chmod(secret, 0o600)
        written.append(Path(public))
    return written


def load_pair(path: str | Path) -> KeyPair:
    """Read a certificate file (`NAME.key_secret` for a pair, `NAME.key` for a public key)."""
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from None
    if public is None or not _Z85_KEY.fullmatch(public.decode("ascii", "replace")):
        raise KeyFileError(f"key file {path} holds no valid public key")
    return KeyPair(public, secret)


def _principal_in(path: Path) -> str:
    """The principal a public certificate names in its metadata, else its file name."""
    try:
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key.strip() == "principal":
                return check_principal(value.strip().strip('"'))
    except OSError:
        pass
    return check_principal(path.name[: -len(".key")])


class KeyRing:
    """Public key (Z85) -> principal, read from a folder of `.key` files or a JSON file,
    and read again when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._principals: dict[bytes, str] = {}
        #: every principal the ring has held a key of since it was first read
        self._ever: set[str] = set()
        self._read_once = False
        self.reload()

    def _current_stamp(self) -> tuple[float, int]:
        try:
            if self.path.is_dir():
                entries = [e for e in os.scandir(self.path) if e.name.endswith(".key")]
                return (max([self.path.stat().st_mtime, *(e.stat().st_mtime for e in entries)]), len(entries))
            stat = self.path.stat()
            return (stat.st_mtime, stat.st_size)
        except OSError as exc:
            raise KeyFileError(f"cannot read key ring {self.path}: {exc.strerror or exc}") from None

    def reload(self) -> None:
        """Read the ring now (KeyFileError, and the old ring kept, when it is unusable)."""
        stamp = self._current_stamp()
        principals: dict[bytes, str] = {}
        if self.path.is_dir():
            for file in sorted(self.path.glob("*.key")):
                principals[load_pair(file).public] = _principal_in(file)
        else:
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise KeyFileError(f"key ring {self.path} is not a JSON object of principal -> key: {exc}") from None
            if not isinstance(doc, dict):
                raise KeyFileError(f"key ring {self.path} is not a JSON object of principal -> key")
            for principal, key in doc.items():
                if not isinstance(key, str) or not _Z85_KEY.fullmatch(key):
                    raise KeyFileError(f"key ring {self.path}: the key of {principal!r} is not a 40-character "
                                       "Z85 public key")
                principals[key.encode()] = check_principal(principal)
        with self._lock:
            before = set(self._principals.values())
            self._principals = principals
            self._stamp = stamp
            now = set(principals.values())
            self._ever |= now
        if self._read_once and now != before:
            log.info("key ring %s changed: %d principal(s); added %s, removed %s", self.path, len(now),
                     sorted(now - before) or "none", sorted(before - now) or "none")
        self._read_once = True

    def refresh(self) -> bool:
        """Read the ring again if it changed; True when it was read (an unreadable
        change keeps the last good ring, and is logged)."""
        try:
            if self._current_stamp() == self._stamp:
                return False
            self.reload()
            return True
        except KeyFileError as exc:
            log.error("key ring unchanged: %s", exc)
            return False

    def principal_of(self, public_key: bytes) -> str | None:
        """The principal of a Z85 public key (None: unknown); the ring is read again
        first if it changed."""
        self.refresh()
        with self._lock:
            return self._principals.get(public_key)

    def principals(self) -> frozenset[str]:
        """Every principal the ring holds a key of (as last read)."""
        with self._lock:
            return frozenset(self._principals.values())

    def revoked(self) -> frozenset[str]:
        """The principals the ring held a key of and holds none of now (as last read)."""
        with self._lock:
            return frozenset(self._ever - set(self._principals.values()))

    def keys_of(self, principal: str) -> list[bytes]:
        """The Z85 public keys of `principal` (as last read), in the ring's order."""
        with self._lock:
            return [key for key, owner in self._principals.items() if owner == principal]

    def __len__(self) -> int:
        with self._lock:
            return len(self._principals)
