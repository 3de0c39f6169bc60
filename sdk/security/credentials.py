"""HTTP credentials (`--http-credentials FILE`) and executor tokens.

The credentials file is Mesos-shaped JSON:

    {"credentials": [{"principal": "ops", "secret": "..."},
                     {"principal": "dashboard", "token": "..."}]}

A request proves a principal with HTTP basic authentication (`principal:secret`) or a
bearer token (`Authorization: Bearer TOKEN`). Secrets and tokens are compared in
constant time. The file is read again when it changes.

Executor tokens: an agent gives each executor it launches a token of its own, an HMAC of
the executor's identity under a key only the agent holds; an executor's registration
must present it, so no process can register as another executor. On CurveZMQ links the
token is the executor's secret key (`ExecutorTokens.key_pair`): its registration proves
it in the handshake, and every message after it comes over that key's connection.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from corral.security.errors import AuthenticationRequired
from corral.security.jsonfile import read_json
from corral.security.keys import KeyPair


class CredentialsError(ValueError):
    """A credentials file that cannot be used; the message names it and the bad part."""


class Unauthenticated(AuthenticationRequired):
    """A request without valid credentials; the message says what was wrong (for the
    log, never the secret)."""


@dataclass(frozen=True, slots=True)
class HttpCredential:
    principal: str
    secret: str | None = None
    token: str | None = None


def parse_credentials(doc: object, where: str) -> list[HttpCredential]:
    if not isinstance(doc, dict) or not isinstance(doc.get("credentials"), list):
        raise CredentialsError(f"{where}: expected {{\"credentials\": [{{\"principal\": ..., \"secret\": ...}}]}}")
    found = []
    for i, entry in enumerate(doc["credentials"]):
        at = f"{where}: credentials[{i}]"
        if not isinstance(entry, dict):
            raise CredentialsError(f"{at}: expected an object, not {entry!r}")
        principal, secret, token = entry.get("principal"), entry.get("secret"), entry.get("token")
        if not isinstance(principal, str) or not principal or ":" in principal:
            raise CredentialsError(f"{at}: \"principal\" must be a non-empty string without ':', not {principal!r}")
        if secret is None and token is None:
            raise CredentialsError(f"{at}: principal {principal!r} has neither a \"secret\" nor a \"token\"")
        for name, value in (("secret", secret), ("token", token)):
            if value is not None and (not isinstance(value, str) or not value):
                raise CredentialsError(f"{at}: the {name} of {principal!r} must be a non-empty string")
        found.append(HttpCredential(principal, secret, token))
    return found


class HttpCredentials:
    """The principals allowed over HTTP, read from `path` (and again when it changes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._credentials: list[HttpCredential] = []
        self.reload()

    def reload(self) -> None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError as exc:
            raise CredentialsError(f"cannot read credentials file {self.path}: {exc.strerror or exc}") from None
        doc = read_json(self.path, "credentials file", CredentialsError)
        credentials = parse_credentials(doc, f"credentials file {self.path}")
        with self._lock:
            self._credentials = credentials
            self._stamp = stamp

    def _current(self) -> list[HttpCredential]:
        try:
            if self.path.stat().st_mtime_ns != self._stamp:
                self.reload()
        except (OSError, CredentialsError):
            pass  # keep the last good file
        with self._lock:
            return self._credentials

    def authenticate(self, authorization: str | None) -> str:
        """The principal an `Authorization` header proves; Unauthenticated otherwise."""
        if not authorization:
            raise Unauthenticated("no credentials")
        scheme, _, value = authorization.strip().partition(" ")
        credentials = self._current()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthenticated("malformed basic credentials") from None
            principal, sep, secret = decoded.partition(":")
            if not sep:
                raise Unauthenticated("malformed basic credentials")
            for c in credentials:
                if c.secret is not None and hmac.compare_digest(c.principal, principal) \
                        and hmac.compare_digest(c.secret.encode(), secret.encode()):
                    return c.principal
            raise Unauthenticated(f"wrong secret for principal {principal!r}")
        if scheme.lower() == "bearer":
            token = value.strip().encode()
            for c in credentials:
                if c.token is not None and hmac.compare_digest(c.token.encode(), token):
                    return c.principal
            raise Unauthenticated("unknown bearer token")
        raise Unauthenticated(f"unsupported authentication scheme {scheme!r} (use Basic or Bearer)")


class ExecutorTokens:
    """Mints and checks the tokens an agent gives its executors."""

    #: the environment variable that carries an executor's token
    ENV = "CORRAL_EXECUTOR_TOKEN"

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    @classmethod
    def for_work_dir(cls, path: str | Path) -> "ExecutorTokens":
        """The agent's key, kept in its work dir so that executors recovered after an
        agent restart still present valid tokens."""
        file = Path(path)
        if file.exists():
            key = file.read_bytes()
            if len(key) != 32:
                raise CredentialsError(f"executor token key {file} is damaged ({len(key)} bytes, expected 32)")
            return cls(key)
        key = secrets.token_bytes(32)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return cls(key)

    def mint(self, framework_id: str, executor_id: str) -> str:
        message = f"{len(framework_id)}:{framework_id}/{executor_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def key_pair(self, framework_id: str, executor_id: str) -> KeyPair:
        """The executor's CurveZMQ key pair, made from its token: the agent can make it
        again after a restart, and no other executor's key is of any use for it."""
        import zmq
        from zmq.utils import z85

        secret = z85.encode(bytes.fromhex(self.mint(framework_id, executor_id)))
        return KeyPair(zmq.curve_public(secret), secret)

    def valid(self, framework_id: str, executor_id: str, token: str) -> bool:
        return hmac.compare_digest(self.mint(framework_id, executor_id).encode(), token.encode())


#: what any caller may read without credentials: what agents, drivers and load
#: balancers need to find and probe a daemon (its health, its transport address)
PUBLIC_PATHS = frozenset({"/health", "/info"})


class HttpGuard:
    """The `authenticate` hook of a daemon's HTTP server (`corral.net.http`): every path
    but `public` needs HTTP basic or bearer credentials of `credentials`; what the
    principal may then do is for the ACLs to say."""

    def __init__(self, credentials: HttpCredentials, public: frozenset[str] = PUBLIC_PATHS) -> None:
        self.credentials = credentials
        self.public = public

    def __call__(self, path: str, authorization: str | None) -> str | None:
        if path in self.public:
            return None
        return self.credentials.authenticate(authorization)
