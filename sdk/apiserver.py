"""An HTTP API for a framework's scheduler: routes by method and path pattern, JSON in
and out, served from background threads.

    api = ApiServer("127.0.0.1", 8080)

    @api.route("GET", "/v1/pod/{name}/info")
    def info(request):
        return Response.json(pods[request.params["name"]])

    api.start()

A pattern's `{name}` matches one path segment. A path no route matches is a 404 naming
it; a known path with another method is a 405; a handler that raises `ApiError` answers
with its status and message; any other exception is a 500 with the error text, and the
server keeps serving. Handlers run on the server's threads: they must lock what they
share with the scheduler's callbacks.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Answer with `status` and a JSON body {"error": message}."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON (None when empty); ApiError 400 when it does not parse."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"the request body is not JSON: {exc}") from None


@dataclass
class Response:
    status: HTTPStatus = HTTPStatus.OK
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: HTTPStatus = HTTPStatus.OK) -> "Response":
        return cls(status, json.dumps(value, indent=1, sort_keys=True).encode() + b"\n")

    @classmethod
    def error(cls, status: HTTPStatus, message: str) -> "Response":
        return cls.json({"error": message}, status)


Handler = Callable[[Request], Response]


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\{[a-zA-Z_][a-zA-Z0-9_]*\})", pattern):
        if piece.startswith("{") and piece.endswith("}"):
            parts.append(f"(?P<{piece[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + "$")


class ApiServer:
    def __init__(self, host: str, port: int) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        api = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                response = api.dispatch(self.command, url.path, dict(parse_qsl(url.query)), body)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("api: " + fmt, *args)

        self._httpd = ThreadingHTTPServer((host, port), RequestHandler)
        self._httpd.daemon_threads = True
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="api", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add_route(method, pattern, handler)
            return handler
        return register

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), _compile(pattern), handler))

    def dispatch(self, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
        path = path.rstrip("/") or "/"
        allowed = []
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            if route_method != method and not (method == "HEAD" and route_method == "GET"):
                allowed.append(route_method)
                continue
            try:
                return handler(Request(method, path, match.groupdict(), query, body))
            except ApiError as exc:
                return Response.error(exc.status, exc.message)
            except Exception as exc:  # a handler bug must not kill the server
                log.exception("%s %s failed", method, path)
                return Response.error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
        if allowed:
            return Response.error(HTTPStatus.METHOD_NOT_ALLOWED,
                                  f"{method} is not allowed on {path} (allowed: {', '.join(sorted(set(allowed)))})")
        return Response.error(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
