"""TLS on the daemons' HTTP port (`--tls-cert`, `--tls-key`) and how clients check it.

A daemon given a certificate and its key serves HTTPS only. Clients (agents and drivers
finding the master, the CLI) name the master `https://HOST:PORT` and check its
certificate against the system's CAs, or the CA bundle in CORRAL_TLS_CA.
"""
from __future__ import annotations

import os
import ssl
from pathlib import Path

#: a CA bundle (PEM) that clients trust for the daemons' certificates
CA_ENV = "CORRAL_TLS_CA"


class TlsError(ValueError):
    """A certificate or key that cannot be used; the message names the file."""


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """An HTTPS server's context for `cert` (PEM, with its chain) and `key` (PEM)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise TlsError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot use TLS certificate {cert} with key {key}: {exc}") from None
    return context


def https(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """A daemon's HTTPS context from --tls-cert and --tls-key (None: plain HTTP)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise TlsError("HTTPS needs both --tls-cert and --tls-key")
    return server_context(cert, key)


def client_context() -> ssl.SSLContext:
    """The context clients check a daemon's certificate with (CORRAL_TLS_CA, or the
    system's CAs)."""
    cafile = os.environ.get(CA_ENV) or None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot use the CA bundle {cafile} ({CA_ENV}): {exc}") from None
