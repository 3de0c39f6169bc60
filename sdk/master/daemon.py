"""The master daemon: runs the master engine on a transport and serves HTTP on the
master's one address: the web UI (`/`), `/health`, `/info` (where the transport listens,
and who leads), `/redirect`, `/state`, `/state.json`, `/frameworks`, `/slaves`,
`/agents`, `/tasks`, `/task`, `/events` (the operator event stream), `/flags`, `/metrics`
(Prometheus), `/metrics/snapshot`, `/files/browse` and `/files/read` (an agent's
sandboxes, through the master), and the operator endpoints `/roles`, `/weights`,
`/quota`, `/reserve`, `/unreserve`, `/agents/gone`, `/teardown` and `/tasks/kill`, each a
call of the master engine (`corral.engines.master.operator`) whose actions (registry
writes, messages) the daemon performs before it answers.

Alone (no `--zk`), a master leads from its start, with its registry in SQLite under its
work dir. With `--zk zk://.../PATH`, masters elect a leader there (`corral.master.election`)
and keep their registry there (`corral.master.zk_registry`). A master that is not the
leader is a standby: it keeps no agents or frameworks and has no transport open; its
state and operator endpoints answer 307 with the leader's address (503 while none is
known). Once elected, a master takes over the registry and starts a new engine from
it (a term: `MasterDaemon.runtime`), whose runtime acts only while the leadership's lease
holds. A master that stops leading drops its term at once and contends again, as a
standby with a new id, to start afresh from the registry if elected again.

Security (`MasterFlags.key` and `keys`; off without them): every link runs over CurveZMQ
with the master's key pair, admitting the keys of the key ring (read again when it
changes: a key added is admitted from its next connection, a principal whose keys are
all removed is refused within KEY_RING_POLL, also on the connections it has open); the master
reaches each registered peer with the key of the principal that registered there.
The masters of one cluster share one key pair (followers know one master key, whoever
leads); each leading term builds its transport, ZAP gate and engine (with its
Authorizer from `acls`) afresh. `http_credentials` makes every endpoint but `/health`
and `/info` ask for HTTP credentials, on a standby too (before it redirects), whose
principal the operator calls, the views (view_frameworks, view_tasks, also in the
event stream) and the sandboxes read through the master (access_sandboxes; the master
then asks the agent with its own `agent_http_credential`: `corral.master.sandboxes`)
are authorised for (401 without, 403 when the ACLs deny).
"""
from __future__ import annotations

import enum
import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlencode

from corral import __version__
from corral.engines.master import MasterConfig, MasterEngine, RegistryState
from corral.engines.master.allocator import AllocatorError, validate_role
from corral.engines.master.leadership import Change
from corral.engines.master.snapshot import STATE_NAMES, check_task_view, task_counters, task_view, tasks_view
from corral.master.events import EventStream
from corral.master.registry import Registry, RegistryStore, registry_performers
from corral.metrics import ZK_STATE_GAUGE, MasterMetrics, Metrics, master_standing
from corral.net.http import REQUEST_PRINCIPAL, HttpServer, Reply, Route
from corral.net.zookeeper import DEFAULT_SESSION_TIMEOUT, Session, encode_master_info, mask_credentials, parse_zk_url
from corral.protos import corral_pb2 as pb
from corral.resources import ResourceError, Resources
from corral.runtime import Runtime
from corral.runtime.loop import NotActing
from corral.runtime.actions import Performer
from corral.runtime.clock import PROCESS_CLOCK
from corral.security.acls import Acls
from corral.security.tls import client_context, https
from corral.security.client import ClientCredential
from corral.master.sandboxes import SandboxProxy
from corral.security.credentials import HttpCredentials, HttpGuard
from corral.security.keys import KeyFileError, KeyPair, KeyRing, load_pair
from corral.security.links import CurveLinks, principal_key

if TYPE_CHECKING:
    from corral.master.election import Contender
    from corral.master.zk_registry import ZooKeeperRegistry

log = logging.getLogger(__name__)

#: the transport listens on the HTTP port plus this, unless --transport-port says otherwise
TRANSPORT_PORT_OFFSET = 10000
#: the web UI's files (index.html, app.js, style.css), served at / and /ui/
WEBUI = Path(__file__).with_name("webui")
#: the endpoints a standby answers itself; every other one is the leader's
STANDBY_ROUTES = frozenset({"/health", "/info", "/redirect", "/metrics", "/metrics/snapshot", "/flags"})


def default_transport_port(http_port: int) -> int:
    """The documented default: HTTP port + 10000 (any free port when HTTP's is 0)."""
    return http_port + TRANSPORT_PORT_OFFSET if http_port else 0


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class MasterFlags:
    work_dir: Path
    host: str = "127.0.0.1"
    port: int = 5050
    transport_port: int | None = None
    hostname: str = field(default_factory=socket.gethostname)
    #: the address agents and frameworks are told to reach the master at, when it is not
    #: `host` (e.g. listening on 0.0.0.0)
    advertise_ip: str | None = None
    #: zk://HOST:PORT[,HOST:PORT...]/PATH: elect a leader among the masters there, and
    #: keep the registry there (None: this master alone, its registry in SQLite)
    zk: str | None = None
    #: the ZooKeeper session timeout asked for (the leader's lease is 3/4 of it)
    zk_session_timeout: float = DEFAULT_SESSION_TIMEOUT
    #: the master's CurveZMQ key pair (NAME.key_secret); with `keys`, turns security on
    key: Path | None = None
    #: who may connect: a folder of public .key files or a JSON file of principal -> key
    keys: Path | None = None
    #: what each principal may do (Mesos-shaped JSON; None: everything)
    acls: Path | None = None
    #: HTTP credentials (basic secrets, bearer tokens); None: HTTP is not authenticated
    http_credentials: Path | None = None
    #: HTTPS on the HTTP port: the certificate (PEM, with its chain) and its key
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: the master's own HTTP credential for the agents' endpoints (it reads their
    #: sandboxes for its callers), a JSON file {"principal": ..., "secret"|"token": ...}
    agent_http_credential: Path | None = None


class Role(enum.Enum):
    """What a master is, as /health and /info say."""

    LEADER = "leader"
    STANDBY = "standby"


#: seconds between looks at the key ring for added or revoked keys
KEY_RING_POLL = 1.0


class MasterDaemon:
    def __init__(self, flags: MasterFlags, config: MasterConfig | None = None) -> None:
        """KeyFileError, AclError, CredentialsError or TlsError (naming the file) when a
        security file cannot be used."""
        self.flags = flags
        self.config = config or MasterConfig()
        flags.work_dir.mkdir(parents=True, exist_ok=True)
        #: this master's CurveZMQ key pair and key ring (None: links are plaintext)
        self.pair: KeyPair | None = None
        self.ring: KeyRing | None = None
        if flags.key is not None or flags.keys is not None:
            if flags.key is None or flags.keys is None:
                raise KeyFileError("a secured master needs both --key (its key pair) and --keys (the key ring of "
                                   "the principals it admits)")
            self.pair = load_pair(flags.key)
            if self.pair.secret is None:
                raise KeyFileError(f"key file {flags.key} holds no secret key: give the master's NAME.key_secret file")
            self.ring = KeyRing(flags.keys)
        self.acls = Acls.load(flags.acls) if flags.acls is not None else None
        agent_credential = ClientCredential.load(flags.agent_http_credential) \
            if flags.agent_http_credential is not None else None
        #: /files/*: agents' sandboxes read for the master's callers
        self.sandbox_proxy = SandboxProxy(agent_credential, client_context() if flags.tls_cert is not None else None)
        guard = HttpGuard(HttpCredentials(flags.http_credentials)) if flags.http_credentials is not None else None
        self.ssl_context = https(flags.tls_cert, flags.tls_key)
        self.http = HttpServer(flags.host, flags.port, {}, static={"/ui/": WEBUI}, index=WEBUI / "index.html",
                               authenticate=guard, ssl_context=self.ssl_context)
        self.address = f"{flags.advertise_ip}:{self.http.port}" if flags.advertise_ip else self.http.address
        transport_port = flags.transport_port
        if transport_port is None:
            transport_port = default_transport_port(self.http.port if flags.port else 0)
        self.zk_url = parse_zk_url(flags.zk) if flags.zk else None
        #: no transport port given: a free one is picked, and kept for every term (a
        #: standby does not hold it, so another socket may take it meanwhile: then a
        #: take-over that cannot listen picks another, `_lead`)
        self._any_transport_port = self.zk_url is not None and not transport_port
        if self._any_transport_port:
            transport_port = _free_port(flags.host)
        self._transport_port = transport_port
        self.master_id = str(uuid.uuid4())
        #: when the master started, as a date (MasterInfo.start_time)
        self.start_time = time.time()
        self._started = PROCESS_CLOCK()
        #: guards the swaps of term and contender (the contender's thread, stop())
        self._swap = threading.Lock()
        self._stopping = threading.Event()
        #: principals whose keys were all removed from the ring (their frames are refused)
        self.revoked: frozenset[str] = frozenset()
        #: the leader's term: its runtime (and engine); None while this master is a standby
        self.runtime: Runtime | None = None
        self.registry: RegistryStore | None = None
        #: this master's candidacy (with --zk; a new one each time it contends again)
        self.contender: Contender | None = None
        #: why this master last stopped leading
        self.deposed_reason = ""
        #: the operator event stream and the Prometheus metrics of the leading term
        self.events: EventStream | None = None
        self.prometheus: MasterMetrics | None = None
        #: a standby's /metrics (Prometheus scrapes every master): whether it leads, its
        #: ZooKeeper session, its uptime
        self.standby_prometheus = Metrics(lambda: master_standing(self))
        if self.zk_url is None:
            self.registry = Registry(flags.work_dir / "registry.sqlite")
            self._begin(self._new_term(self.registry.state(), registry_performers(self.registry)))
        self.http.streams["/events"] = self._events
        self.http.routes.update({
            "/health": lambda q, b: Reply.json(self.health()),
            "/info": lambda q, b: Reply.json(self.info()),
            "/redirect": lambda q, b: self._redirect("/", {}),
            "/flags": lambda q, b: Reply.json(self.flags_view()),
            "/metrics": lambda q, b: Reply(body=self.prometheus_text(), content_type="text/plain; version=0.0.4"),
            "/metrics/snapshot": lambda q, b: Reply.json(self.metrics()),
        })
        leader_routes: dict[str, Route] = {
            "/state": lambda q, b: Reply.json(self.state()),
            "/state.json": lambda q, b: Reply.json(self.state()),
            "/frameworks": lambda q, b: Reply.json({"frameworks": self.state()["frameworks"]}),
            "/slaves": lambda q, b: Reply.json({"slaves": self.state()["agents"]}),
            "/agents": lambda q, b: Reply.json({"agents": self.state()["agents"]}),
            "/tasks": self._tasks,
            "/task": self._task,
            "/files/browse": lambda q, b: self._sandboxes("browse", q),
            "/files/read": lambda q, b: self._sandboxes("read", q),
            "/teardown": self._teardown,
            "/tasks/kill": self._kill,
            "/roles": lambda q, b: Reply.json(self.roles()),
            "/weights": self._weights,
            "/quota": self._quota,
            "/reserve": lambda q, b: self._reservation(b, unreserve=False),
            "/unreserve": lambda q, b: self._reservation(b, unreserve=True),
            "/agents/gone": self._mark_gone,
        }
        self.http.routes.update({path: self._leader_only(path, route) for path, route in leader_routes.items()})

    # -- terms: leading, and not --------------------------------------------------------
    @property
    def transport_address(self) -> str:
        """Where peers reach the transport while this master leads."""
        if self.runtime is not None:
            return self.runtime.address
        return f"tcp://{self.flags.advertise_ip or self.flags.host}:{self._transport_port}"

    @property
    def engine(self) -> MasterEngine:
        """The leading term's engine (NotActing on a standby)."""
        return self._term()[1]

    def _new_term(self, state: RegistryState, performers: dict[type, Performer],
                  acting: Callable[[], bool] | None = None) -> Runtime:
        """A runtime and engine that start from the registry's `state`."""
        def make_engine(address: str) -> MasterEngine:
            info = pb.MasterInfo(id=self.master_id, hostname=self.flags.hostname, port=self.http.port,
                                 transport=address, version=__version__, start_time=self.start_time)
            return MasterEngine(info, self.config, now=PROCESS_CLOCK(), registry=state, acls=self.acls)

        curve = None
        if self.pair is not None and self.ring is not None:
            curve = CurveLinks(self.pair, self.ring, lambda address: self._server_key(runtime, address))
        runtime = Runtime(make_engine, host=self.flags.host, port=self._transport_port, clock=PROCESS_CLOCK,
                          curve=curve, acting=acting, advertise=self.flags.advertise_ip)
        runtime.add_performers(performers)
        if self.revoked:
            runtime.dispatcher.revoke(self.revoked)
        return runtime

    def _begin(self, runtime: Runtime) -> None:
        """Make `runtime` the leading term, with its event stream and metrics."""
        self.runtime = runtime
        self.events = EventStream(runtime.engine, runtime.lock, self.state)  # type: ignore[arg-type]
        self.prometheus = MasterMetrics(self, runtime)

    def prometheus_text(self) -> bytes:
        """/metrics: the leading term's, or a standby's (elected 0, no leader's figures)."""
        prometheus = self.prometheus
        if prometheus is not None and self.leading():
            return prometheus.text()
        return self.standby_prometheus.text()

    async def _events(self, request: Any, closing: asyncio.Event) -> Any:
        """The operator event stream of the leading term; a standby answers as its other
        leader's endpoints do (307 to the leader, or 503)."""
        from aiohttp import web

        events = self.events
        if self.leading() and events is not None:
            return await events.serve(request, closing)
        reply = self._redirect("/events", dict(request.query))
        return web.Response(status=int(reply.status), body=reply.body, headers=reply.headers,
                            content_type=reply.content_type)

    def _contend(self) -> None:
        """Join the election as a new contender (a new master id)."""
        from corral.master.election import Contender

        assert self.zk_url is not None
        self.master_id = str(uuid.uuid4())
        ip = self._advertised_ip()
        info = encode_master_info(self.master_id, self.flags.hostname, ip, self.http.port, __version__,
                                  f"tcp://{ip}:{self._transport_port}", https=self.flags.tls_cert is not None)
        self.contender = Contender(self.zk_url, info, self._leadership_changed,
                                   session_timeout=self.flags.zk_session_timeout, clock=PROCESS_CLOCK)
        self.contender.start()

    def _advertised_ip(self) -> str:
        """What the contender's JSON tells followers: --advertise-ip, else --ip (the
        host's address when that is a wildcard)."""
        if self.flags.advertise_ip:
            return self.flags.advertise_ip
        host = self.flags.host
        if host in ("", "0.0.0.0", "::"):
            return socket.gethostbyname(self.flags.hostname)
        return host

    def _leadership_changed(self, change: Change) -> None:
        """The contender's thread: elected (take over the registry, start a term), or
        deposed (drop the term, contend again)."""
        contender = self.contender
        assert contender is not None
        if change is Change.ELECTED:
            self._lead(contender)
        else:
            self._step_down(contender)

    def _lead(self, contender: Contender) -> None:
        from corral.master.zk_registry import ZooKeeperRegistry

        with self._swap:
            if self._stopping.is_set() or contender is not self.contender:
                return
            taken = PROCESS_CLOCK()
            assert self.zk_url is not None
            registry = ZooKeeperRegistry(contender.client, self.zk_url, self.master_id)
            try:
                registry.take_over()
                state = registry.state()
                runtime = self._new_term(state, registry_performers(registry),
                                         acting=lambda: contender.leadership.acts(PROCESS_CLOCK()))
                runtime.add_commit(self._guarded_commit(contender, registry))
            except Exception as exc:
                log.error("elected, but cannot take over: %s: %s", type(exc).__name__, exc)
                if isinstance(exc, OSError) and self._any_transport_port:
                    self._transport_port = _free_port(self.flags.host)  # (it contends again with this one)
                contender.registry_failed(f"take-over failed: {exc}")
                return
            log.info("leading: registry read in %.3fs (%d admitted, %d unreachable, %d gone agents; %d frameworks)",
                     PROCESS_CLOCK() - taken, len(state.admitted), len(state.unreachable), len(state.gone),
                     len(state.frameworks))
            self.registry = registry
            self._begin(runtime)
            runtime.start(name="master-io")

    @staticmethod
    def _guarded_commit(contender: Contender, registry: ZooKeeperRegistry) -> Callable[[], None]:
        """The commit of a turn's registry writes that, when it fails, ends the
        leadership at once (the runtime's gate then drops the turn's messages)."""
        def commit() -> None:
            staged = registry.staged
            try:
                registry.commit()
            except Exception as exc:
                log.error("registry write of %d znodes failed: %s: %s", staged, type(exc).__name__, exc)
                contender.registry_failed(f"{type(exc).__name__}: {exc}")

        return commit

    def _step_down(self, contender: Contender) -> None:
        with self._swap:
            if contender is not self.contender:
                return
            runtime, self.runtime = self.runtime, None
            self.registry = None
            self.events = self.prometheus = None
            self.deposed_reason = contender.leadership.reason
        if runtime is not None:
            runtime.stop()
            runtime.join(5.0)
        contender.stop()
        with self._swap:
            if not self._stopping.is_set() and contender is self.contender:
                log.info("contending again as a standby")
                self._contend()

    # -- HTTP --------------------------------------------------------------------------
    def leading(self) -> bool:
        """Whether this master leads and may act now."""
        runtime = self.runtime
        return runtime is not None and (self.contender is None or self.contender.leadership.acts(PROCESS_CLOCK()))

    def leader_address(self) -> str | None:
        """The leading master's HTTP address, as far as this master knows (a standby
        whose ZooKeeper session is not connected knows none)."""
        if self.leading():
            return self.address
        contender = self.contender
        if contender is None or contender.session is not Session.CONNECTED:
            return None
        info = contender.leader_info
        if info is None or info.master_id == self.master_id:
            return None
        return info.http_address

    def _leader_only(self, path: str, route: Route) -> Route:
        """`route` while this master leads; otherwise the same request at the leader.
        One that loses the leadership while it serves the request answers 503: what the
        request changed may not have been kept (its registry write was dropped)."""
        def serve(query: dict[str, str], body: bytes) -> Reply:
            if not self.leading():
                return self._redirect(path, query)
            try:
                return route(query, body)
            except NotActing as exc:
                return Reply.error(HTTPStatus.SERVICE_UNAVAILABLE, f"this master stopped leading meanwhile ({exc}): "
                                                                    "nothing was changed; ask the leader")

        return serve

    def _redirect(self, path: str, query: dict[str, str]) -> Reply:
        """307 to the same request at the leader (503 when no leader is known)."""
        leader = self.leader_address()
        if leader is None:
            return Reply.error(HTTPStatus.SERVICE_UNAVAILABLE, "no master leads at the moment; try again shortly")
        scheme = "https" if self.ssl_context is not None else "http"
        location = f"{scheme}://{leader}{path}" + (f"?{urlencode(query)}" if query else "")
        reply = Reply.json({"leader": leader}, HTTPStatus.TEMPORARY_REDIRECT)
        reply.headers["Location"] = location
        return reply

    def zk_session(self) -> Session | None:
        return self.contender.session if self.contender is not None else None

    def health(self) -> dict[str, Any]:
        session = self.zk_session()
        return {"healthy": True, "role": (Role.LEADER if self.leading() else Role.STANDBY).value,
                "zookeeper": session.value if session is not None else None,
                "deposed_reason": self.deposed_reason or None}

    def _server_key(self, runtime: Runtime, address: str) -> bytes | None:
        """On `runtime`'s I/O thread: the CurveZMQ key of the peer at `address`: that of
        the principal that registered there (the one it last connected with)."""
        principal = runtime.engine.principal_at(address)  # type: ignore[attr-defined]
        gate = runtime.transport.gate
        if principal is None or self.ring is None or gate is None:
            return None
        return principal_key(self.ring, gate, principal)

    def _watch_key_ring(self) -> None:
        """Follow the key ring: a principal none of whose keys it holds any more is
        revoked (its frames refused, also on the connections it has open) until a key
        of it is back. (The gate reads the ring at every handshake too, so new keys are
        admitted at once.)"""
        ring = self.ring
        assert ring is not None
        revoked: frozenset[str] = frozenset()
        while not self._stopping.wait(KEY_RING_POLL):
            ring.refresh()
            now = ring.revoked()
            if now != revoked:
                revoked = now
                with self._swap:  # a term begun from now on starts with them revoked
                    self.revoked = revoked
                    runtime = self.runtime
                if runtime is not None:
                    runtime.call_soon(runtime.dispatcher.revoke, revoked)

    def info(self) -> dict[str, Any]:
        session = self.zk_session()
        return {"id": self.master_id, "transport": self.transport_address, "version": __version__,
                "hostname": self.flags.hostname, "port": self.http.port, "leader": self.leading(),
                "leader_address": self.leader_address(), "zookeeper": session.value if session is not None else None}

    def _term(self) -> tuple[Runtime, MasterEngine]:
        runtime = self.runtime
        if runtime is None:
            raise NotActing("this master no longer leads")
        return runtime, runtime.engine  # type: ignore[return-value]

    def state(self) -> dict[str, Any]:
        """The master's view, as the request's principal may see it."""
        viewer = REQUEST_PRINCIPAL.get()
        runtime, engine = self._term()
        with runtime.lock:
            view = engine.snapshot(viewer)
        view.update(address=self.address, leader=self.address, elected=True, now=runtime.clock())
        return view

    # -- tasks ------------------------------------------------------------------------
    def _tasks(self, query: dict[str, str], body: bytes) -> Reply:
        """GET [?framework_id=F][&state=TASK_RUNNING][&all=1]: the tasks of every (or
        one) framework, active ones only unless `all` (then completed ones and those of
        completed frameworks too), in one state or all."""
        wanted = query.get("state", "").upper()
        if wanted and not wanted.startswith("TASK_"):
            wanted = "TASK_" + wanted
        if wanted and wanted not in STATE_NAMES.values():
            return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid state {query['state']!r}: not a task state")
        every = query.get("all", "") not in ("", "0", "false")
        viewer = REQUEST_PRINCIPAL.get()
        with self._term()[0].lock:
            tasks = tasks_view(self.engine, query.get("framework_id"), wanted, every, viewer)
        return Reply.json({"tasks": tasks})

    def _task(self, query: dict[str, str], body: bytes) -> Reply:
        """GET ?task_id=T[&framework_id=F]: one task, with its whole history (403 when
        the ACLs do not let the caller view it)."""
        if not query.get("task_id"):
            return Reply.error(HTTPStatus.BAD_REQUEST, "missing 'task_id'")
        viewer = REQUEST_PRINCIPAL.get()
        with self._term()[0].lock:
            task, problem = self.engine.find_task(query.get("framework_id"), query["task_id"])
            if task is None:
                return Reply.error(HTTPStatus.NOT_FOUND, problem)
            check_task_view(self.engine, task, viewer)
            return Reply.json(task_view(task))

    def _kill(self, query: dict[str, str], body: bytes) -> Reply:
        """POST {"task_id": T[, "framework_id": F]}: kill the task, as its framework would."""
        try:
            request = json.loads(body or b"null")
            task_id = str(request["task_id"])
            framework_id = str(request["framework_id"]) if request.get("framework_id") else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid kill request: {exc!r}; expected {{\"task_id\": ...}}")

        principal = REQUEST_PRINCIPAL.get()

        def kill() -> str:
            task, problem = self.engine.find_task(framework_id, task_id)
            if task is None:
                return problem
            return self.engine.operator_kill(task.framework_id, task.id, PROCESS_CLOCK(), principal)

        problem = self._term()[0].call(kill)
        if problem:
            return Reply.error(HTTPStatus.NOT_FOUND, f"cannot kill: {problem}")
        return Reply.json({"task_id": task_id, "killing": True})

    def _teardown(self, query: dict[str, str], body: bytes) -> Reply:
        """POST {"framework_id": F}: remove the framework; its tasks are killed."""
        try:
            framework_id = str(json.loads(body or b"null")["framework_id"])
        except (ValueError, KeyError, TypeError) as exc:
            return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid teardown request: {exc!r}; "
                                                       "expected {\"framework_id\": ...}")
        principal = REQUEST_PRINCIPAL.get()
        problem = self._term()[0].call(lambda: self.engine.operator_teardown(framework_id, PROCESS_CLOCK(), principal))
        if problem:
            return Reply.error(HTTPStatus.NOT_FOUND, f"cannot tear down: {problem}")
        return Reply.json({"framework_id": framework_id, "torn_down": True})

    def _sandboxes(self, what: str, query: dict[str, str]) -> Reply:
        """/files/browse and /files/read: an agent's sandboxes, for the caller the ACLs
        let read them (corral.master.sandboxes)."""
        runtime, engine = self._term()
        return self.sandbox_proxy.serve(what, query, REQUEST_PRINCIPAL.get(), engine, runtime.lock)

    def roles(self) -> dict[str, Any]:
        runtime, engine = self._term()
        with runtime.lock:
            return engine.allocator.snapshot()

    def _weights(self, query: dict[str, str], body: bytes) -> Reply:
        """GET: every weight set. POST [{"role": R, "weight": W}, ...]: set them."""
        runtime, engine = self._term()
        if body:
            try:
                entries = json.loads(body)
                if not isinstance(entries, list):
                    raise ValueError("expected a JSON list of {\"role\": ..., \"weight\": ...}")
                changes = [(str(e["role"]), e["weight"]) for e in entries]
            except (ValueError, KeyError, TypeError) as exc:
                return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid weights: {exc}")
            principal = REQUEST_PRINCIPAL.get()
            problem = runtime.call(lambda: engine.set_weights(changes, runtime.clock(), principal))
            if problem:
                return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid weights: {problem}")
        with runtime.lock:
            weights = sorted(engine.weights.items())
        return Reply.json({"weights": [{"role": r, "weight": w} for r, w in weights]})

    def _quota(self, query: dict[str, str], body: bytes) -> Reply:
        """GET: every quota. POST {"role": R, "limit": "cpus:4;mem:1024"} sets one (JSON
        resources accepted too); a null limit removes it."""
        runtime, engine = self._term()
        if body:
            try:
                entry = json.loads(body)
                role = str(entry["role"])
                limit = entry.get("limit")
                if limit is None:
                    quota = None
                else:
                    quota = Resources.parse(limit if isinstance(limit, str) else json.dumps(limit))
            except (ValueError, KeyError, TypeError, AttributeError, ResourceError) as exc:
                return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid quota: {exc}")
            principal = REQUEST_PRINCIPAL.get()
            problem = runtime.call(lambda: engine.set_quota(role, quota, runtime.clock(), principal))
            if problem:
                return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid quota: {problem}")
        with runtime.lock:
            quotas = sorted(engine.quotas.items())
        return Reply.json({"quotas": [{"role": r, "limit": q.to_text()} for r, q in quotas]})

    def _reservation(self, body: bytes, unreserve: bool) -> Reply:
        """POST {"agent_id": A, "role": R, "resources": "cpus:1;mem:128"}: (un)reserve
        those resources of agent A for role R, dynamically, outside any offer."""
        runtime, engine = self._term()
        what = "unreserve" if unreserve else "reserve"
        try:
            request = json.loads(body or b"null")
            agent_id, role = str(request["agent_id"]), validate_role(str(request["role"]))
            resources = Resources.parse(str(request["resources"])).to_protos()
        except (ValueError, KeyError, TypeError, ResourceError, AllocatorError) as exc:
            return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid {what} request: {exc}")
        principal = REQUEST_PRINCIPAL.get()
        for r in resources:
            r.reservations.add(type=pb.Resource.ReservationInfo.DYNAMIC, role=role, principal=principal or "operator")
            r.role = role
        problem = runtime.call(lambda: engine.operator_reservation(agent_id, resources, unreserve, runtime.clock(),
                                                                   principal))
        if problem:
            return Reply.error(HTTPStatus.CONFLICT, f"cannot {what}: {problem}")
        return Reply.json({"agent_id": agent_id, what: Resources.from_protos(resources).to_text()})

    def _mark_gone(self, query: dict[str, str], body: bytes) -> Reply:
        """POST {"agent_id": A}: agent A will not come back; its tasks are gone."""
        runtime, engine = self._term()
        try:
            agent_id = str(json.loads(body or b"null")["agent_id"])
        except (ValueError, KeyError, TypeError) as exc:
            return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid request: {exc}")
        principal = REQUEST_PRINCIPAL.get()
        problem = runtime.call(lambda: engine.mark_gone(agent_id, runtime.clock(), principal))
        if problem:
            return Reply.error(HTTPStatus.NOT_FOUND, problem)
        return Reply.json({"agent_id": agent_id, "gone": True})

    def flags_view(self) -> dict[str, Any]:
        flags = asdict(self.flags)
        for name in ("work_dir", "key", "keys", "acls", "http_credentials", "tls_cert", "tls_key",
                     "agent_http_credential"):
            value = getattr(self.flags, name)
            flags[name] = None if value is None else str(value)
        flags["zk"] = mask_credentials(self.flags.zk) if self.flags.zk else None
        flags.update({f"config.{k}": v for k, v in asdict(self.config).items()})
        return flags

    def metrics(self) -> dict[str, Any]:
        counters: dict[str, Any] = {"master/elected": int(self.leading()),
                                    "master/zk_state": ZK_STATE_GAUGE[self.zk_session()],
                                    "master/uptime_secs": self.uptime()}
        runtime = self.runtime
        if runtime is None:
            return counters
        engine: MasterEngine = runtime.engine  # type: ignore[assignment]
        with runtime.lock:
            counters.update({f"master/{k}": v for k, v in engine.counters.items()})
            counters["master/agents_registered"] = sum(1 for a in engine.agents.values() if a.state.value == "registered")
            counters["master/agents_unreachable"] = sum(1 for a in engine.agents.values() if a.state.value == "unreachable")
            counters["master/frameworks_connected"] = sum(1 for f in engine.frameworks.values() if f.connected)
            counters["master/frameworks_disconnected"] = sum(1 for f in engine.frameworks.values() if not f.connected)
            counters["master/tasks_active"] = sum(len(f.tasks) for f in engine.frameworks.values())
            counters.update({f"master/tasks_{name.removeprefix('TASK_').lower()}": n
                             for name, n in task_counters(engine).items()})
            counters["master/frameworks_completed"] = len(engine.completed_frameworks)
            counters["master/outstanding_offers"] = len(engine.offers)
            counters.update({f"master/denied/{action}": n for action, n in engine.authorizer.denials.items()})
        if self.ring is not None:
            counters["master/key_ring/principals"] = len(self.ring.principals())
            counters["master/key_ring/revoked"] = len(self.revoked)
        counters.update({f"transport/{k}": v for k, v in runtime.metrics().items()})
        return counters

    def uptime(self) -> float:
        """Seconds since the master started."""
        return PROCESS_CLOCK() - self._started

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.http.start()
        if self.ring is not None:
            threading.Thread(target=self._watch_key_ring, name="key-ring", daemon=True).start()
        if self.runtime is not None:
            self.runtime.start(name="master-io")
            log.info("master %s listening on %s (transport %s)", self.master_id, self.address, self.runtime.address)
            return
        with self._swap:
            self._contend()
        log.info("master %s listening on %s, contending for the leadership at %s", self.master_id, self.address,
                 self.zk_url)

    def stop(self) -> None:
        with self._swap:
            self._stopping.set()
            contender, runtime = self.contender, self.runtime
        if runtime is not None:
            runtime.stop()
            runtime.join(5.0)
        if contender is not None:
            contender.stop()  # our znode goes at once: a standby takes over without waiting for a timeout
        self.http.close()
        if isinstance(self.registry, Registry):
            self.registry.close()
