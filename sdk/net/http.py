"""The HTTP server every daemon runs on its one user-facing `HOST:PORT` (aiohttp).

Routes are plain functions `(query: dict[str, str], body: bytes) -> Reply`, registered
by the daemon; they run on the server's worker threads (they read snapshots under the
daemon's runtime lock, which must not block the server's event loop). A route that
raises becomes a 500 with the error text, never a dead server. Streams (`streams`)
are coroutines that write a long-lived response (the master's event stream); they run
on the server's event loop and end when the server closes. Static files (`static`:
URL prefix -> folder, and `index` for `/`) are served from the package. A `fallback`,
if given, answers every request no route or stream serves, seeing its method and path
(how a framework's API routes by method and path pattern: corral.framework.apiserver);
without one such a request is a 404.

The server listens from its constructor on, so a port that is taken is an error there
(naming the address), and `port` is the real one when 0 was asked for.

Authentication (`authenticate`, optional): called with each request's path and
`Authorization` header before anything answers it (routes, streams, the fallback, the
web UI's static files), it returns the principal the request proves (None: a public
path), which a route reads as `REQUEST_PRINCIPAL.get()` (a stream as
`request["principal"]`), or raises `AuthenticationRequired`: a 401 asking for HTTP basic
credentials. A route that raises `Forbidden` (an ACL's denial) answers 403 with its
message. TLS: with `ssl_context`, the port speaks HTTPS only.

A browser sends the basic credentials it was given (at its prompt) with every request
to the daemon, also those another site's page makes it send: so, with authentication
on, a request that may change something (not GET, HEAD or OPTIONS) coming from another
site's page (its `Sec-Fetch-Site` or `Origin` says so) is refused with 403 before it
is served. Clients that are not browsers send neither header.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from corral.security.errors import AuthenticationRequired, Forbidden

log = logging.getLogger(__name__)

#: worker threads that run routes (each holds the runtime lock only while it reads)
ROUTE_THREADS = 4
#: seconds `close` gives open requests and streams to finish
SHUTDOWN_GRACE = 2.0
#: methods that change nothing (a browser may send them from any site's page)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Reply:
    status: HTTPStatus = HTTPStatus.OK
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: HTTPStatus = HTTPStatus.OK) -> "Reply":
        return cls(status, orjson.dumps(value))

    @classmethod
    def error(cls, status: HTTPStatus, message: str) -> "Reply":
        return cls.json({"error": message}, status)


Route = Callable[[dict[str, str], bytes], Reply]
#: (path, Authorization header) -> the principal the request proves (None: a public path)
Authenticate = Callable[[str, "str | None"], "str | None"]

#: the principal the request being served authenticated as (None: none, or a public path)
REQUEST_PRINCIPAL: ContextVar[str | None] = ContextVar("corral_request_principal", default=None)


@dataclass(frozen=True)
class Request:
    """A request as a `Fallback` sees it (path without a trailing slash)."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes


Fallback = Callable[[Request], Reply]
#: a long-lived response: gets the request and an event set when the server closes
Stream = Callable[[web.Request, asyncio.Event], Awaitable[web.StreamResponse]]


class HttpServer:
    """Serves `routes` (path -> Route), `streams` (path -> Stream) and static files on
    host:port, from an event loop on a thread of its own."""

    def __init__(self, host: str, port: int, routes: dict[str, Route], *, streams: dict[str, Stream] | None = None,
                 static: dict[str, Path] | None = None, index: Path | None = None,
                 fallback: Fallback | None = None, authenticate: Authenticate | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes = routes
        self.fallback = fallback
        self.authenticate = authenticate
        self._ssl_context = ssl_context
        self.streams = dict(streams or {})
        self._static = dict(static or {})
        self._index = index
        self._socket = _listen(host, port)
        self.host = host
        self.port = self._socket.getsockname()[1]
        self._workers = ThreadPoolExecutor(ROUTE_THREADS, thread_name_prefix="http")
        self.loop = asyncio.new_event_loop()
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._started = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def close(self) -> None:
        """Stop serving: streams are told to end, open requests get SHUTDOWN_GRACE."""
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            try:
                future.result(SHUTDOWN_GRACE + 5.0)
            except Exception:
                log.exception("HTTP server shutdown failed")
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
        else:
            self._socket.close()
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self._started.set()
        self.loop.run_forever()
        self.loop.close()

    async def _serve(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=16 * 1024 * 1024,
                              middlewares=[self._authenticate] if self.authenticate is not None else [])
        if self._index is not None:
            app.router.add_get("/", self._serve_index)
        for prefix, folder in self._static.items():
            app.router.add_static(prefix, folder)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket, ssl_context=self._ssl_context).start()

    async def _shutdown(self) -> None:
        assert self._closing is not None and self._runner is not None
        self._closing.set()
        await self._runner.cleanup()

    # -- requests --------------------------------------------------------------------
    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        """Every request (routes, streams, static files) proves its principal first."""
        assert self.authenticate is not None
        if request.method not in SAFE_METHODS and _from_another_site(request):
            return web.json_response({"error": f"{request.method} {request.path} from another site's page refused "
                                               "(the browser would have sent its credentials for it)"},
                                     status=HTTPStatus.FORBIDDEN)
        try:
            request["principal"] = self.authenticate(request.path.rstrip("/") or "/",
                                                     request.headers.get("Authorization"))
        except AuthenticationRequired as exc:
            return web.json_response({"error": f"authentication required: {exc}"}, status=HTTPStatus.UNAUTHORIZED,
                                     headers={"WWW-Authenticate": 'Basic realm="corral"'})
        return await handler(request)

    async def _serve_index(self, request: web.Request) -> web.StreamResponse:
        assert self._index is not None
        return web.FileResponse(self._index, headers={"Cache-Control": "no-cache"})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        stream = self.streams.get(path)
        if stream is not None:
            assert self._closing is not None
            return await stream(request, self._closing)
        route = self.routes.get(path)
        if route is None and self.fallback is None:
            reply = Reply.error(HTTPStatus.NOT_FOUND, f"no such endpoint: {request.path}")
        else:
            body = await request.read()
            query = dict(request.query)
            if route is not None:
                call = partial(route, query, body)
            else:
                assert self.fallback is not None
                call = partial(self.fallback, Request(request.method, path, query, body))
            reply = await self.loop.run_in_executor(self._workers, _call, call, request.method, path,
                                                    request.get("principal"))
        response = web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        response.content_type = reply.content_type
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response


def _from_another_site(request: web.Request) -> bool:
    """Whether a browser sent `request` for a page of another origin."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin != f"{request.scheme}://{request.host}"


def _call(call: Callable[[], Reply], method: str, path: str, principal: str | None = None) -> Reply:
    """Run a route (or the fallback) on a worker thread, as `principal`: 403 when the ACLs
    deny it, 500 (and the server goes on) when it fails."""
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


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; OSError naming the address when it is taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
