"""corral.net.http: exact routes first, then the fallback (which sees the method and the
path); without a fallback an unknown path is a 404; a failing route or fallback is a 500
and the server keeps serving."""
import json
import urllib.error
import urllib.request
from http import HTTPStatus

import pytest

from corral.net.http import HttpServer, Reply, Request


def call(server, method, path, body=None):
    request = urllib.request.Request(f"http://{server.address}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def served():
    servers = []

    def serve(routes, fallback=None):
        server = HttpServer("127.0.0.1", 0, routes, fallback=fallback)
        server.start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.close()


def test_routes_win_then_the_fallback_sees_method_path_query_and_body(served):
    seen: list[Request] = []

    def fallback(request: Request) -> Reply:
        seen.append(request)
        if request.path == "/bad":
            raise RuntimeError("fallback bug")
        return Reply.json({"method": request.method, "path": request.path})

    server = served({"/state": lambda query, body: Reply.json({"state": query.get("x")})}, fallback)
    assert call(server, "GET", "/state?x=1") == (200, {"state": "1"})
    assert call(server, "PUT", "/v1/config/?y=2", b"{}") == (200, {"method": "PUT", "path": "/v1/config"})
    assert seen == [Request("PUT", "/v1/config", {"y": "2"}, b"{}")]
    status, body = call(server, "DELETE", "/bad")
    assert status == HTTPStatus.INTERNAL_SERVER_ERROR and "fallback bug" in body["error"]
    assert call(server, "GET", "/state") == (200, {"state": None})


def test_without_a_fallback_an_unknown_path_is_a_404(served):
    server = served({})
    assert call(server, "POST", "/nothing", b"") == (404, {"error": "no such endpoint: /nothing"})
