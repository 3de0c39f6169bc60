"""corral.framework.apiserver: routes by method and pattern, JSON errors, a server that survives
its handlers."""
import json
import urllib.error
import urllib.request
from http import HTTPStatus

import pytest

from corral.framework.apiserver import ApiError, ApiServer, Reply


@pytest.fixture
def api():
    server = ApiServer("127.0.0.1", 0)
    items = {"a": 1}

    @server.route("GET", "/v1/items/{name}")
    def get(request):
        if request.params["name"] not in items:
            raise ApiError(HTTPStatus.NOT_FOUND, f"unknown item {request.params['name']!r}")
        return Reply.json({"name": request.params["name"], "value": items[request.params["name"]]})

    @server.route("PUT", "/v1/items/{name}")
    def put(request):
        items[request.params["name"]] = request.json()
        return Reply.json({"ok": True, "query": request.query})

    @server.route("POST", "/v1/boom")
    def boom(request):
        raise RuntimeError("handler bug")

    server.start()
    yield server
    server.close()


def call(api, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{api.address}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_routes_match_method_and_pattern(api):
    assert call(api, "PUT", "/v1/items/b?x=1", 5) == (200, {"ok": True, "query": {"x": "1"}})
    assert call(api, "GET", "/v1/items/b/") == (200, {"name": "b", "value": 5})


def test_errors_are_json_and_the_server_keeps_serving(api):
    assert call(api, "GET", "/v1/items/zz") == (404, {"error": "unknown item 'zz'"})
    assert call(api, "GET", "/v1/nothing") == (404, {"error": "no such endpoint: /v1/nothing"})
    status, body = call(api, "DELETE", "/v1/items/a")
    assert status == 405 and "GET, PUT" in body["error"]
    status, body = call(api, "POST", "/v1/boom")
    assert status == 500 and "handler bug" in body["error"]
    request = urllib.request.Request(f"http://{api.address}/v1/items/a", data=b"{not json", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400 and "not JSON" in json.loads(raised.value.read())["error"]
    assert call(api, "GET", "/v1/items/a") == (200, {"name": "a", "value": 1})
