"""The small HTTP server every daemon runs on its one user-facing `HOST:PORT`.

Routes are plain functions `(query: dict[str, str], body: bytes) -> Reply`, registered
by the daemon; they run on the server's threads, so they must only read snapshots the
daemon's runtime hands them. A route that raises becomes a 500 with the error text,
never a dead server. A `fallback`, if given, answers every request no route serves,
seeing its method and path (how a framework's API routes by method and path pattern:
corral.framework.apiserver); without one such a request is a 404.
"""
from __future__ import annotations

import json
import logging
import threading
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

    def __init__(self, host: str, port: int, routes: dict[str, Route], *, fallback: Fallback | None = None) -> None:
        self.routes = routes
        self.fallback = fallback
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
                try:
                    if route is not None:
                        reply = route(query, body)
                    elif server.fallback is not None:
                        reply = server.fallback(Request(self.command, path, query, body))
                    else:
                        reply = Reply.error(HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path}")
                except Exception as exc:  # a route bug must not kill the server
                    log.exception("HTTP %s %s failed", self.command, url.path)
                    reply = Reply.error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
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
