"""The small HTTP server every daemon runs on its one user-facing `HOST:PORT`.

Routes are plain functions `(query: dict[str, str], body: bytes) -> Reply`, registered
by the daemon; they run on the server's threads, so they must only read snapshots the
daemon's runtime hands them. A route that raises becomes a 500 with the error text,
never a dead server.
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


class HttpServer:
    """Serves `routes` (path -> Route) on host:port in background threads."""

    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.routes = routes
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                route = server.routes.get(url.path.rstrip("/") or "/")
                if route is None:
                    reply = Reply.error(HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path}")
                else:
                    try:
                        reply = route(dict(parse_qsl(url.query)), body)
                    except Exception as exc:  # a route bug must not kill the server
                        log.exception("HTTP %s failed", url.path)
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

            do_GET = do_POST = do_HEAD = _serve

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
