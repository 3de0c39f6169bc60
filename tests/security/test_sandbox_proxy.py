"""The master's sandbox reads for its callers (`corral.master.sandboxes`), without
processes: the caller's access_sandboxes is checked before anything is fetched (a
denial is a counted 403 and the agent is not asked), the agent is asked as the master
(its credential, HTTPS when the master has TLS) with the framework named, paths that
leave the sandboxes are refused, and an agent that refuses the master's credentials is
a 502 that says what to configure. Also the clients' credentials (`ClientCredential`)."""
from __future__ import annotations

import io
import json
import ssl
import threading
import urllib.error
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any

import pytest

from corral.engines.authorization import Authorizer, Denied
from corral.master.sandboxes import SandboxProxy, framework_of
from corral.security.acls import Acls
from corral.security.client import ClientCredential
from corral.security.credentials import CredentialsError, HttpCredentials

ACLS = Acls.parse({"access_sandboxes": [
    {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
    {"principals": {"values": ["alice"]}, "users": {"values": ["alice"]}},
    {"principals": {"type": "ANY"}, "users": {"type": "NONE"}},
]})


def framework(fid: str, user: str) -> Any:
    return SimpleNamespace(id=fid, info=SimpleNamespace(user=user))


def engine() -> Any:
    agent = SimpleNamespace(transport="tcp://10.0.0.7:15051", info=SimpleNamespace(port=5051))
    return SimpleNamespace(agents={"a1": agent}, frameworks={"fw-alice": framework("fw-alice", "alice")},
                           completed_frameworks=[framework("fw-bob", "bob")], authorizer=Authorizer(ACLS))


class Opener:
    """Records what the proxy asks; answers `reply` (or raises it)."""

    def __init__(self, reply: Any = None) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.reply = reply

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        self.calls.append((request, kwargs))
        if isinstance(self.reply, Exception):
            raise self.reply
        body = json.dumps({"offset": 0, "data": "hello\n", "length": 6}).encode()
        return _Response(body)


class _Response(io.BytesIO):
    status = 200


MASTER = ClientCredential("master", "m-secret")


def serve(proxy: SandboxProxy, e: Any, principal: str | None, path: str, what: str = "read", **query: str):
    return proxy.serve(what, {"agent_id": "a1", "path": path, **query}, principal, e, threading.RLock())


def test_a_caller_the_acls_refuse_gets_403_and_nothing_is_fetched():
    opener, e = Opener(), engine()
    proxy = SandboxProxy(MASTER, None, opener)
    with pytest.raises(Denied, match="principal 'alice' is not authorized to access_sandboxes for user 'bob'"):
        serve(proxy, e, "alice", "fw-bob/ex/c1/stdout")  # a completed framework's user counts too
    with pytest.raises(Denied, match="principal 'mallory'"):
        serve(proxy, e, "mallory", "fw-alice/ex/c1/stdout")
    with pytest.raises(Denied, match="an unauthenticated caller"):
        serve(proxy, e, None, "fw-alice/ex/c1/../../../fw-alice/ex/c1/stdout")
    with pytest.raises(Denied):  # the sandboxes folder itself: only who may read any user's
        serve(proxy, e, "alice", "", what="browse")
    assert opener.calls == []
    assert e.authorizer.denials == {"access_sandboxes": 4}


def test_an_allowed_caller_is_served_by_asking_the_agent_as_the_master():
    opener = Opener()
    proxy = SandboxProxy(MASTER, None, opener)
    reply = serve(proxy, engine(), "alice", "fw-alice/ex/./c1//stdout", offset="0", length="6", extra="dropped")
    assert reply.status == HTTPStatus.OK and json.loads(reply.body)["data"] == "hello\n"
    ((request, kwargs),) = opener.calls
    assert request.full_url == ("http://10.0.0.7:5051/files/read?path=fw-alice%2Fex%2Fc1%2Fstdout&offset=0&length=6"
                                "&framework_id=fw-alice")
    assert request.get_header("Authorization") == MASTER.authorization()
    assert kwargs["context"] is None
    serve(proxy, engine(), "ops", "", what="browse")
    assert opener.calls[-1][0].full_url == "http://10.0.0.7:5051/files/browse?path="


def test_with_tls_the_agent_is_asked_over_https_with_the_context():
    opener, context = Opener(), ssl.create_default_context()
    serve(SandboxProxy(MASTER, context, opener), engine(), "ops", "fw-alice")
    ((request, kwargs),) = opener.calls
    assert request.full_url.startswith("https://10.0.0.7:5051/files/read?") and kwargs["context"] is context


@pytest.mark.parametrize("path, why", [("/var/lib/corral/sandboxes/fw-alice", "relative to the agent's sandboxes"),
                                       ("../../etc/passwd", "leaves the agent's sandboxes"),
                                       ("fw-alice/../..", "leaves the agent's sandboxes"),
                                       ("fw\x00", "NUL byte")])
def test_paths_that_leave_the_sandboxes_are_refused(path: str, why: str):
    opener = Opener()
    reply = serve(SandboxProxy(MASTER, None, opener), engine(), "ops", path)
    assert reply.status == HTTPStatus.BAD_REQUEST and why in json.loads(reply.body)["error"]
    assert opener.calls == []


def test_framework_of_normalises_the_path():
    assert framework_of("") == ("", None) and framework_of("./") == ("", None)
    assert framework_of("fw/a/../b") == ("fw/b", "fw")


def test_an_agent_refusing_the_masters_credentials_is_a_502_saying_what_to_configure():
    refusal = urllib.error.HTTPError("http://x", 401, "Unauthorized", {}, io.BytesIO(b'{"error": "no"}'))  # type: ignore[arg-type]
    reply = serve(SandboxProxy(None, None, Opener(refusal)), engine(), "ops", "fw-alice/ex/c1/stdout")
    assert reply.status == HTTPStatus.BAD_GATEWAY
    assert "--agent-http-credential" in json.loads(reply.body)["error"]
    denied = urllib.error.HTTPError("http://x", 403, "Forbidden", {}, io.BytesIO(b'{"error": "leads out"}'))  # type: ignore[arg-type]
    reply = serve(SandboxProxy(MASTER, None, Opener(denied)), engine(), "ops", "fw-alice/ex/c1/link")
    assert reply.status == HTTPStatus.FORBIDDEN and json.loads(reply.body)["error"] == "leads out"


def test_an_unknown_agent_is_a_404():
    reply = SandboxProxy(MASTER, None, Opener()).serve("read", {"agent_id": "nope", "path": "fw-alice"}, "ops",
                                                      engine(), threading.RLock())
    assert reply.status == HTTPStatus.NOT_FOUND


# ---------------------------------------------------------------- client credentials
def test_client_credentials_prove_their_principal_to_the_daemons(tmp_path):
    file = tmp_path / "credentials.json"
    file.write_text(json.dumps({"credentials": [{"principal": "ops", "secret": "s3"}, {"principal": "ci", "token": "t0k"}]}))
    daemons = HttpCredentials(file)
    assert daemons.authenticate(ClientCredential.of("ops", "s3", None).authorization()) == "ops"
    assert daemons.authenticate(ClientCredential.of(None, None, "t0k").authorization()) == "ci"
    one = tmp_path / "master.json"
    one.write_text(json.dumps({"principal": "ops", "secret": "s3"}))
    assert daemons.authenticate(ClientCredential.load(one).authorization()) == "ops"
    assert ClientCredential.from_environment({"CORRAL_HTTP_PRINCIPAL": "ops", "CORRAL_HTTP_SECRET": "s3"}) == \
        ClientCredential("ops", "s3")
    assert ClientCredential.from_environment({}) is None


@pytest.mark.parametrize("principal, secret, token, message", [
    ("ops", None, None, "principal 'ops' has no secret"),
    (None, "s3", None, "an HTTP secret without a principal"),
    ("a:b", "s3", None, "contains ':'"),
    ("ops", "s3", "t", "not both"),
])
def test_credentials_that_do_not_make_one_are_refused(principal, secret, token, message):
    with pytest.raises(CredentialsError, match=message):
        ClientCredential.of(principal, secret, token)


def test_a_credential_file_that_cannot_be_used_is_named(tmp_path):
    with pytest.raises(CredentialsError, match="cannot read credential file .*missing.json"):
        ClientCredential.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"principal": "master"}))
    with pytest.raises(CredentialsError, match="bad.json.*neither a \"secret\" nor a \"token\""):
        ClientCredential.load(bad)
