"""A framework scheduler's HTTP API: routes by method and path pattern, JSON in and out,
served by corral's one HTTP server (`corral.net.http.HttpServer`, as its fallback).

    api = ApiServer("127.0.0.1", 8080)

    @api.route("GET", "/v1/pod/{name}/info")
    def info(request):
        return Reply.json(pods[request.params["name"]])

    api.start()

A pattern's `{name}` matches one path segment. A path no route matches is a 404 naming
it; a known path with another method is a 405 naming the allowed ones (HEAD is served
by a GET route); a handler that raises `ApiError` answers with its status and message;
any other exception is a 500 with the error text (from the HTTP server), and the server
keeps serving. Handlers run on the server's threads: they must lock what they share
with the scheduler's callbacks.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable

from corral.net import http
from corral.net.http import HttpServer, Reply

__all__ = ["ApiError", "ApiServer", "Reply", "Request"]


class ApiError(Exception):
    """Answer with `status` and a JSON body {"error": message}."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    """A request a route matched: `params` are the pattern's `{name}` segments."""

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


Handler = Callable[[Request], Reply]


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\{[a-zA-Z_][a-zA-Z0-9_]*\})", pattern):
        if piece.startswith("{") and piece.endswith("}"):
            parts.append(f"(?P<{piece[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + "$")


class ApiServer:
    """Routes (method, pattern) -> Handler, served on host:port from `start` to `close`."""

    def __init__(self, host: str, port: int) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._http = HttpServer(host, port, {}, fallback=self.dispatch)

    @property
    def address(self) -> str:
        return self._http.address

    @property
    def port(self) -> int:
        return self._http.port

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add_route(method, pattern, handler)
            return handler
        return register

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), _compile(pattern), handler))

    def dispatch(self, request: http.Request) -> Reply:
        allowed = []
        for route_method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            if route_method != request.method and not (request.method == "HEAD" and route_method == "GET"):
                allowed.append(route_method)
                continue
            try:
                return handler(Request(request.method, request.path, match.groupdict(), request.query, request.body))
            except ApiError as exc:
                return Reply.error(exc.status, exc.message)
        if allowed:
            return Reply.error(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {request.path} "
                                                              f"(allowed: {', '.join(sorted(set(allowed)))})")
        return Reply.error(HTTPStatus.NOT_FOUND, f"no such endpoint: {request.path}")

    def start(self) -> None:
        self._http.start()

    def close(self) -> None:
        self._http.close()
