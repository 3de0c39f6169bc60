"""What an HTTP client of a secured daemon presents: a principal's secret (HTTP basic)
or a bearer token, and the CA it checks the daemon's certificate with.

The operator CLI takes them from `--http-principal`/`--http-secret` or `--http-token`
(defaults: CORRAL_HTTP_PRINCIPAL, CORRAL_HTTP_SECRET, CORRAL_HTTP_TOKEN; the variables
keep the secret out of `ps`); the master, which reads agents' sandboxes for its callers,
from a file of one credential (`--agent-http-credential FILE`, default
CORRAL_AGENT_HTTP_CREDENTIAL), shaped like an entry of `--http-credentials`:
`{"principal": "master", "secret": "..."}` or `{"principal": "master", "token": "..."}`.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from corral.security.credentials import CredentialsError, HttpCredential, parse_credentials
from corral.security.jsonfile import read_json

PRINCIPAL_ENV = "CORRAL_HTTP_PRINCIPAL"
SECRET_ENV = "CORRAL_HTTP_SECRET"
TOKEN_ENV = "CORRAL_HTTP_TOKEN"
#: the master's credential file for the agents' HTTP endpoints
AGENT_CREDENTIAL_ENV = "CORRAL_AGENT_HTTP_CREDENTIAL"


@dataclass(frozen=True, slots=True)
class ClientCredential:
    """A principal and its secret, or a bearer token (principal then only names it)."""

    principal: str | None
    secret: str | None = None
    token: str | None = None

    def authorization(self) -> str:
        """The `Authorization` header's value."""
        if self.token is not None:
            return f"Bearer {self.token}"
        return "Basic " + base64.b64encode(f"{self.principal}:{self.secret}".encode()).decode()

    @property
    def who(self) -> str:
        """How messages name it ('principal 'ops'', or 'a bearer token')."""
        return f"principal {self.principal!r}" if self.principal else "a bearer token"

    @classmethod
    def of(cls, principal: str | None, secret: str | None, token: str | None) -> "ClientCredential | None":
        """From flags or variables (None: nothing given); CredentialsError when they do
        not make one credential."""
        if token:
            if secret:
                raise CredentialsError("give either a bearer token or a principal's secret, not both")
            return cls(principal or None, token=token)
        if principal and secret:
            if ":" in principal:
                raise CredentialsError(f"HTTP principal {principal!r} contains ':' (basic authentication cannot "
                                       "carry it)")
            return cls(principal, secret)
        if principal:
            raise CredentialsError(f"HTTP principal {principal!r} has no secret: pass --http-secret or set "
                                   f"{SECRET_ENV}")
        if secret:
            raise CredentialsError(f"an HTTP secret without a principal: pass --http-principal or set {PRINCIPAL_ENV}")
        return None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "ClientCredential | None":
        return cls.of(environ.get(PRINCIPAL_ENV), environ.get(SECRET_ENV), environ.get(TOKEN_ENV))

    @classmethod
    def load(cls, path: str | Path) -> "ClientCredential":
        """One credential from a file; CredentialsError naming the file and what is wrong."""
        doc = read_json(path, "credential file", CredentialsError)
        (entry,) = parse_credentials({"credentials": [doc]}, f"credential file {path}")
        return cls.of_entry(entry)

    @classmethod
    def of_entry(cls, entry: HttpCredential) -> "ClientCredential":
        return cls(entry.principal, entry.secret, None if entry.secret is not None else entry.token)
