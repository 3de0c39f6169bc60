"""The small HTTP server every daemon runs on its one user-facing `HOST:PORT`.

Routes are plain functions `(query: dict[str, str], body: bytes) -> Reply`, registered
by the daemon; they run on the server's threads, so they must only read snapshots the
daemon's runtime hands them. A route that raises becomes a 500 with the error text,
never a dead server; one that raises `Forbidden` (an ACL's denial) a 403 with its
message. A `fallback`, if given, answers every request no route serves, seeing its
method and path (how a framework's API routes by method and path pattern:
corral.framework.apiserver); without one such a request is a 404.

Authentication (`authenticate`, optional): called with each request's path and
`Authorization` header before its route (or the fallback), it returns the principal the
request proves (None: a public path), which the route reads as
`REQUEST_PRINCIPAL.get()`, or raises `AuthenticationRequired`: a 401 asking for HTTP
basic credentials. TLS: with `ssl_context`, the port speaks HTTPS only.
"""
from __future__ import annotations

import json
import logging
import ssl
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)


@dataclass
class Reply:
    status: HTTPStatus = HTTPStatus.OK
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: HTTPStatus = HTTPStatus.OK) -> "Reply":
        return cls(status, json.dumps(value, indent=1, sort_keys=True).encode())

    @classmethod
    def error(cls, status: HTTPStatus, message: str) -> "Reply":
        return cls.json({"error": message}, status)


Route = Callable[[dict[str, str], bytes], Reply]
#: (path, Authorization header) -> the principal the request proves (None: a public path)
Authenticate = Callable[[str, "str | None"], "str | None"]

#: the principal the request being served authenticated as (None: none, or a public path)
REQUEST_PRINCIPAL: ContextVar[str | None] = ContextVar("corral_request_principal", default=None)


class AuthenticationRequired(Exception):
    """A request that must prove a principal and did not; the message says why."""


class Forbidden(Exception):
    """What a request's principal may not do; the message says what."""


def _serve(call: Callable[[], Reply], method: str, path: str, authorization: str | None,
           authenticate: Authenticate | None) -> Reply:
    """Authenticate the request, then run its route (`call`): 401 when it must prove a
    principal and does not, 403 when the route's ACLs deny it, 500 (and the server goes
    on) when the route fails."""
    try:
        principal = authenticate(path, authorization) if authenticate is not None else None
    except AuthenticationRequired as exc:
        reply = Reply.error(HTTPStatus.UNAUTHORIZED, f"authentication required: {exc}")
        reply.headers["WWW-Authenticate"] = 'Basic realm="corral"'
        return reply
    token = REQUEST_PRINCIPAL.set(principal)
    try:
        return call()
    except Forbidden as exc:
        return Reply.error(HTTPStatus.FORBIDDEN, str(exc))
    except Exception as exc:  # a route bug must not kill the server
        log.exception("HTTP %s %s failed", method, path)
        return Reply.error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
    finally:
        REQUEST_PRINCIPAL.reset(token)


@dataclass(frozen=True)
class Request:
    """A request as a `Fallback` sees it (path without a trailing slash)."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes


Fallback = Callable[[Request], Reply]


class HttpServer:
    """Serves `routes` (path -> Route), then `fallback`, on host:port in background threads."""

    def __init__(self, host: str, port: int, routes: dict[str, Route], *, fallback: Fallback | None = None,
                 authenticate: Authenticate | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes = routes
        self.fallback = fallback
        self.authenticate = authenticate
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = url.path.rstrip("/") or "/"
                query = dict(parse_qsl(url.query))
                route = server.routes.get(path)
                if route is not None:
                    reply = _serve(lambda: route(query, body), self.command, path, self.headers.get("Authorization"),
                                   server.authenticate)
                elif server.fallback is not None:
                    fallback = server.fallback
                    request = Request(self.command, path, query, body)
                    reply = _serve(lambda: fallback(request), self.command, path, self.headers.get("Authorization"),
                                   server.authenticate)
                else:
                    reply = Reply.error(HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path}")
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http: " + fmt, *args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        if ssl_context is not None:
            # the handshake happens on the request's thread, at its first read
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True,
                                                         do_handshake_on_connect=False)
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
