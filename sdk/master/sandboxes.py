"""The master's `/files/browse` and `/files/read`: callers (the web UI, `corral task
logs`) read an agent's sandboxes through the master, so that they need one address.

The caller is authorised here, before the agent is asked anything: the path is relative
to the agent's sandboxes folder (as a task's "sandbox" in `/task` is) and starts with
the framework's id; the ACLs' access_sandboxes must let the caller's principal read the
sandboxes of that framework's user (the sandboxes folder itself: no object). A denial
is a 403 naming the principal, counted with the master's denials, and nothing is
fetched. Then the master asks the agent as itself: with `--agent-http-credential` (the
agents' `--http-credentials` must hold it, and their ACLs let it read sandboxes), over
HTTPS when the master serves HTTPS (checking the agent's certificate as other clients
check the master's: CORRAL_TLS_CA or the system's CAs), and names the framework, so that
the agent refuses a path that leads out of it (a link in one framework's sandbox to
another's is not followed for a caller allowed only the first).
"""
from __future__ import annotations

import posixpath
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from typing import Any, Callable

from corral.engines.authorization import Authorizer
from corral.engines.master.snapshot import framework_record
from corral.net.http import Reply
from corral.security.acls import Action
from corral.security.client import ClientCredential

#: seconds the master waits for an agent's file endpoints
AGENT_FILES_TIMEOUT = 5.0
#: the query parameters passed on to the agent
FORWARDED = ("offset", "length")

Opener = Callable[..., Any]


class SandboxPathError(ValueError):
    """A path the master does not pass on; the message says why."""


def agent_http_address(transport: str, port: int) -> str:
    """An agent's HTTP address: the host of its transport, and the port it registered."""
    host = transport.removeprefix("tcp://").rpartition(":")[0]
    return f"{host}:{port}"


def framework_of(path: str) -> tuple[str, str | None]:
    """The normalised `path` (relative to the sandboxes folder) and the framework whose
    sandboxes it is in (None: the folder itself); SandboxPathError for a path that is
    absolute or climbs out of the folder."""
    if "\x00" in path:
        raise SandboxPathError("invalid 'path': contains a NUL byte")
    if path.startswith("/"):
        raise SandboxPathError(f"invalid 'path' {path!r}: give it relative to the agent's sandboxes, as a task's "
                               "\"sandbox\" is")
    normal = posixpath.normpath(path) if path else "."
    if normal == ".." or normal.startswith("../"):
        raise SandboxPathError(f"invalid 'path' {path!r}: it leaves the agent's sandboxes")
    if normal == ".":
        return "", None
    return normal, normal.split("/", 1)[0]


class SandboxProxy:
    """Reads agents' sandboxes for the master's callers (see the module's docstring)."""

    def __init__(self, credential: ClientCredential | None, tls: ssl.SSLContext | None,
                 opener: Opener = urllib.request.urlopen, timeout: float = AGENT_FILES_TIMEOUT) -> None:
        self.credential = credential
        self.tls = tls
        self._open = opener
        self.timeout = timeout

    def serve(self, what: str, query: dict[str, str], principal: str | None, engine: Any,
              lock: threading.RLock) -> Reply:
        """GET /files/browse|read?agent_id=A&path=P[&offset=O&length=L] for `principal`,
        from the agent `engine` (the master's, read under `lock`) knows; Denied (a 403)
        when the ACLs do not let the principal read that framework's sandboxes."""
        agent_id = query.get("agent_id", "")
        try:
            path, framework_id = framework_of(query.get("path", ""))
        except SandboxPathError as exc:
            return Reply.error(HTTPStatus.BAD_REQUEST, str(exc))
        with lock:
            agent = engine.agents.get(agent_id)
            address = agent_http_address(agent.transport, agent.info.port) if agent is not None else None
            fw = framework_record(engine, framework_id) if framework_id is not None else None
            user = fw.info.user if fw is not None else None
            authorizer: Authorizer = engine.authorizer
            authorizer.check(Action.ACCESS_SANDBOXES, principal, user)
        if address is None:
            return Reply.error(HTTPStatus.NOT_FOUND, f"unknown agent {agent_id!r}")
        forwarded = {"path": path, **{k: query[k] for k in FORWARDED if k in query}}
        if framework_id is not None:
            forwarded["framework_id"] = framework_id
        return self._fetch(agent_id, address, what, forwarded)

    def _fetch(self, agent_id: str, address: str, what: str, query: dict[str, str]) -> Reply:
        scheme = "https" if self.tls is not None else "http"
        request = urllib.request.Request(f"{scheme}://{address}/files/{what}?{urllib.parse.urlencode(query)}")
        if self.credential is not None:
            request.add_header("Authorization", self.credential.authorization())
        try:
            with self._open(request, timeout=self.timeout, context=self.tls) as response:
                return Reply(HTTPStatus(response.status), response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == HTTPStatus.UNAUTHORIZED:
                held = self.credential.who if self.credential is not None else "no credential"
                return Reply.error(HTTPStatus.BAD_GATEWAY,
                                   f"agent {agent_id} at {address} asks for HTTP credentials and refused the "
                                   f"master's ({held}): start the master with --agent-http-credential naming a "
                                   "principal of the agents' --http-credentials")
            return Reply(HTTPStatus(exc.code), exc.read())
        except (OSError, ValueError) as exc:
            return Reply.error(HTTPStatus.BAD_GATEWAY, f"agent {agent_id} at {address} did not answer: {exc}")

