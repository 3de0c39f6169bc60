"""The master daemon: runs the master engine on a transport and serves HTTP on the
master's one address: the web UI (`/`), `/health`, `/info` (where the transport
listens), `/state`, `/state.json`, `/frameworks`, `/slaves`, `/agents`, `/tasks`,
`/task`, `/events` (the operator event stream), `/flags`, `/metrics` (Prometheus),
`/metrics/snapshot`, `/files/browse` and `/files/read` (an agent's sandboxes, through
the master), and the operator endpoints `/roles`, `/weights`, `/quota`, `/reserve`,
`/unreserve`, `/agents/gone`, `/teardown` and `/tasks/kill`, each a call of the master
engine (`corral.engines.master.operator`) whose actions (registry writes, messages) the
daemon performs before it answers.

Security (`MasterFlags.key` and `keys`; off without them): every link runs over CurveZMQ
with the master's key pair, admitting the keys of the key ring (read again when it
changes: a key added is admitted from its next connection, a principal whose keys are
all removed is refused within KEY_RING_POLL, also on the connections it has open); the master
reaches each registered peer with the key of the principal that registered there.
`acls` are the engine's; `http_credentials` makes every endpoint but `/health` and
`/info` ask for HTTP credentials, whose principal the operator calls, the views
(view_frameworks, view_tasks, also in the event stream) and the sandboxes read through
the master (access_sandboxes; the master then asks the agent with its own
`agent_http_credential`) are authorised for (401 without, 403 when the ACLs deny)."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from http import HTTPStatus
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corral import __version__
from corral.engines.master import ForgetAgent, MasterConfig, MasterEngine, RecordAgent, RecordQuota, RecordWeight

from corral.engines.master.allocator import AllocatorError, validate_role
from corral.engines.master.snapshot import STATE_NAMES, check_task_view, task_counters, task_view, tasks_view
from corral.master.events import EventStream
from corral.metrics import MasterMetrics
from corral.net.http import REQUEST_PRINCIPAL, HttpServer, Reply
from corral.master.registry import Registry
from corral.resources import ResourceError, Resources
from corral.protos import corral_pb2 as pb
from corral.runtime import Runtime
from corral.runtime.clock import PROCESS_CLOCK
from corral.security.acls import Acls
from corral.security.tls import client_context, https
from corral.security.client import ClientCredential
from corral.master.sandboxes import SandboxProxy
from corral.security.credentials import HttpCredentials, HttpGuard
from corral.security.keys import KeyFileError, KeyRing, load_pair
from corral.security.links import CurveLinks, principal_key

log = logging.getLogger(__name__)

#: the transport listens on the HTTP port plus this, unless --transport-port says otherwise
TRANSPORT_PORT_OFFSET = 10000


def default_transport_port(http_port: int) -> int:
    """The documented default: HTTP port + 10000 (any free port when HTTP's is 0)."""
    return http_port + TRANSPORT_PORT_OFFSET if http_port else 0


#: the web UI's files (index.html, app.js, style.css), served at / and /ui/
WEBUI = Path(__file__).with_name("webui")


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


#: seconds between looks at the key ring for added or revoked keys
KEY_RING_POLL = 1.0


class MasterDaemon:
    def __init__(self, flags: MasterFlags, config: MasterConfig | None = None) -> None:
        """KeyFileError, AclError, CredentialsError or TlsError (naming the file) when a
        security file cannot be used."""
        self.flags = flags
        self.config = config or MasterConfig()
        flags.work_dir.mkdir(parents=True, exist_ok=True)
        curve = None
        #: the key ring (None: links are plaintext)
        self.ring: KeyRing | None = None
        if flags.key is not None or flags.keys is not None:
            if flags.key is None or flags.keys is None:
                raise KeyFileError("a secured master needs both --key (its key pair) and --keys (the key ring of "
                                   "the principals it admits)")
            pair = load_pair(flags.key)
            if pair.secret is None:
                raise KeyFileError(f"key file {flags.key} holds no secret key: give the master's NAME.key_secret file")
            self.ring = KeyRing(flags.keys)
            curve = CurveLinks(pair, self.ring, self._server_key)
        acls = Acls.load(flags.acls) if flags.acls is not None else None
        agent_credential = ClientCredential.load(flags.agent_http_credential) \
            if flags.agent_http_credential is not None else None
        #: /files/*: agents' sandboxes read for the master's callers
        self.sandbox_proxy = SandboxProxy(agent_credential, client_context() if flags.tls_cert is not None else None)
        guard = HttpGuard(HttpCredentials(flags.http_credentials)) if flags.http_credentials is not None else None
        self.http = HttpServer(flags.host, flags.port, {}, static={"/ui/": WEBUI}, index=WEBUI / "index.html",
                               authenticate=guard, ssl_context=https(flags.tls_cert, flags.tls_key))
        transport_port = flags.transport_port
        if transport_port is None:
            transport_port = default_transport_port(self.http.port if flags.port else 0)
        self.master_id = str(uuid.uuid4())
        #: when the master started, as a date (MasterInfo.start_time)
        self.start_time = time.time()
        self._started = PROCESS_CLOCK()

        self.registry = Registry(flags.work_dir / "registry.sqlite")

        def make_engine(address: str) -> MasterEngine:
            info = pb.MasterInfo(id=self.master_id, hostname=flags.hostname, port=self.http.port,
                                 transport=address, version=__version__, start_time=self.start_time)
            return MasterEngine(info, self.config, now=PROCESS_CLOCK(), registry=self.registry.state(), acls=acls)

        self.runtime = Runtime(make_engine, host=flags.host, port=transport_port, clock=PROCESS_CLOCK,
                               advertise=flags.advertise_ip, curve=curve)
        self.engine: MasterEngine = self.runtime.engine  # type: ignore[assignment]
        self._stopping = threading.Event()
        #: principals whose keys were all removed from the ring (their frames are refused)
        self.revoked: frozenset[str] = frozenset()
        self.runtime.add_performers({
            RecordAgent: lambda a: self.registry.record_agent(a.agent_id, a.info, a.record, a.since),
            ForgetAgent: lambda a: self.registry.forget_agent(a.agent_id),
            RecordWeight: lambda a: self.registry.set_weight(a.role, a.weight),
            RecordQuota: lambda a: self.registry.set_quota(a.role, a.quota),
        })
        self.events = EventStream(self.engine, self.runtime.lock, self.state)
        self.prometheus = MasterMetrics(self)
        self.http.streams["/events"] = self.events.serve
        self.http.routes.update({
            "/health": lambda q, b: Reply(body=b"", content_type="text/plain"),
            "/info": lambda q, b: Reply.json(self.info()),
            "/state": lambda q, b: Reply.json(self.state()),
            "/state.json": lambda q, b: Reply.json(self.state()),
            "/frameworks": lambda q, b: Reply.json({"frameworks": self.state()["frameworks"]}),
            "/slaves": lambda q, b: Reply.json({"slaves": self.state()["agents"]}),
            "/agents": lambda q, b: Reply.json({"agents": self.state()["agents"]}),
            "/tasks": self._tasks,
            "/task": self._task,
            "/flags": lambda q, b: Reply.json(self.flags_view()),
            "/metrics": lambda q, b: Reply(body=self.prometheus.text(), content_type="text/plain; version=0.0.4"),
            "/metrics/snapshot": lambda q, b: Reply.json(self.metrics()),
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
        })
        self.address = f"{flags.advertise_ip}:{self.http.port}" if flags.advertise_ip else self.http.address

    def _server_key(self, address: str) -> bytes | None:
        """On the I/O thread: the CurveZMQ key of the peer at `address`: that of the
        principal that registered there (the one it last connected with)."""
        principal = self.engine.principal_at(address)
        gate = self.runtime.transport.gate
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
                self.runtime.call_soon(self._revoke, revoked)

    def _revoke(self, principals: frozenset[str]) -> None:
        """On the I/O thread: refuse the frames of these principals from now on."""
        self.runtime.dispatcher.revoke(principals)
        self.revoked = principals

    def info(self) -> dict[str, Any]:
        return {"id": self.master_id, "transport": self.runtime.address, "version": __version__,
                "hostname": self.flags.hostname, "port": self.http.port, "leader": True}

    def state(self) -> dict[str, Any]:
        """The master's view, as the request's principal may see it."""
        viewer = REQUEST_PRINCIPAL.get()
        with self.runtime.lock:
            view = self.engine.snapshot(viewer)
        view.update(address=self.address, leader=self.address, elected=True, now=self.runtime.clock())
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
        with self.runtime.lock:
            tasks = tasks_view(self.engine, query.get("framework_id"), wanted, every, viewer)
        return Reply.json({"tasks": tasks})

    def _task(self, query: dict[str, str], body: bytes) -> Reply:
        """GET ?task_id=T[&framework_id=F]: one task, with its whole history (403 when
        the ACLs do not let the caller view it)."""
        if not query.get("task_id"):
            return Reply.error(HTTPStatus.BAD_REQUEST, "missing 'task_id'")
        viewer = REQUEST_PRINCIPAL.get()
        with self.runtime.lock:
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
            return self.engine.operator_kill(task.framework_id, task.id, self.runtime.clock(), principal)

        problem = self.runtime.call(kill)
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
        problem = self.runtime.call(lambda: self.engine.operator_teardown(framework_id, self.runtime.clock(), principal))
        if problem:
            return Reply.error(HTTPStatus.NOT_FOUND, f"cannot tear down: {problem}")
        return Reply.json({"framework_id": framework_id, "torn_down": True})

    def _sandboxes(self, what: str, query: dict[str, str]) -> Reply:
        """/files/browse and /files/read: an agent's sandboxes, for the caller the ACLs
        let read them (corral.master.sandboxes)."""
        return self.sandbox_proxy.serve(what, query, REQUEST_PRINCIPAL.get(), self.engine, self.runtime.lock)

    def roles(self) -> dict[str, Any]:
        with self.runtime.lock:
            return self.engine.allocator.snapshot()

    def _weights(self, query: dict[str, str], body: bytes) -> Reply:
        """GET: every weight set. POST [{"role": R, "weight": W}, ...]: set them."""
        if body:
            try:
                entries = json.loads(body)
                if not isinstance(entries, list):
                    raise ValueError("expected a JSON list of {\"role\": ..., \"weight\": ...}")
                changes = [(str(e["role"]), e["weight"]) for e in entries]
            except (ValueError, KeyError, TypeError) as exc:
                return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid weights: {exc}")
            principal = REQUEST_PRINCIPAL.get()
            problem = self.runtime.call(lambda: self.engine.set_weights(changes, self.runtime.clock(), principal))
            if problem:
                return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid weights: {problem}")
        with self.runtime.lock:
            weights = sorted(self.engine.weights.items())
        return Reply.json({"weights": [{"role": r, "weight": w} for r, w in weights]})

    def _quota(self, query: dict[str, str], body: bytes) -> Reply:
        """GET: every quota. POST {"role": R, "limit": "cpus:4;mem:1024"} sets one (JSON
        resources accepted too); a null limit removes it."""
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
            problem = self.runtime.call(lambda: self.engine.set_quota(role, quota, self.runtime.clock(), principal))
            if problem:
                return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid quota: {problem}")
        with self.runtime.lock:
            quotas = sorted(self.engine.quotas.items())
        return Reply.json({"quotas": [{"role": r, "limit": q.to_text()} for r, q in quotas]})

    def _reservation(self, body: bytes, unreserve: bool) -> Reply:
        """POST {"agent_id": A, "role": R, "resources": "cpus:1;mem:128"}: (un)reserve
        those resources of agent A for role R, dynamically, outside any offer."""
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
        problem = self.runtime.call(lambda: self.engine.operator_reservation(agent_id, resources, unreserve,
                                                                             self.runtime.clock(), principal))
        if problem:
            return Reply.error(HTTPStatus.CONFLICT, f"cannot {what}: {problem}")
        return Reply.json({"agent_id": agent_id, what: Resources.from_protos(resources).to_text()})

    def _mark_gone(self, query: dict[str, str], body: bytes) -> Reply:
        """POST {"agent_id": A}: agent A will not come back; its tasks are gone."""
        try:
            agent_id = str(json.loads(body or b"null")["agent_id"])
        except (ValueError, KeyError, TypeError) as exc:
            return Reply.error(HTTPStatus.BAD_REQUEST, f"invalid request: {exc}")
        principal = REQUEST_PRINCIPAL.get()
        problem = self.runtime.call(lambda: self.engine.mark_gone(agent_id, self.runtime.clock(), principal))
        if problem:
            return Reply.error(HTTPStatus.NOT_FOUND, problem)
        return Reply.json({"agent_id": agent_id, "gone": True})

    def flags_view(self) -> dict[str, Any]:
        flags = asdict(self.flags)
        for name in ("work_dir", "key", "keys", "acls", "http_credentials", "tls_cert", "tls_key",
                     "agent_http_credential"):
            value = getattr(self.flags, name)
            flags[name] = None if value is None else str(value)
        flags.update({f"config.{k}": v for k, v in asdict(self.config).items()})
        return flags

    def metrics(self) -> dict[str, Any]:
        with self.runtime.lock:
            engine = self.engine
            counters: dict[str, Any] = {f"master/{k}": v for k, v in engine.counters.items()}
            counters["master/agents_registered"] = sum(1 for a in engine.agents.values() if a.state.value == "registered")
            counters["master/agents_unreachable"] = sum(1 for a in engine.agents.values() if a.state.value == "unreachable")
            counters["master/frameworks_connected"] = sum(1 for f in engine.frameworks.values() if f.connected)
            counters["master/frameworks_disconnected"] = sum(1 for f in engine.frameworks.values() if not f.connected)
            counters["master/tasks_active"] = sum(len(f.tasks) for f in engine.frameworks.values())
            counters.update({f"master/tasks_{name.removeprefix('TASK_').lower()}": n
                             for name, n in task_counters(engine).items()})
            counters["master/frameworks_completed"] = len(engine.completed_frameworks)
            counters["master/outstanding_offers"] = len(engine.offers)
            counters["master/uptime_secs"] = self.uptime()
            counters.update({f"master/denied/{action}": n for action, n in engine.authorizer.denials.items()})
            if self.ring is not None:
                counters["master/key_ring/principals"] = len(self.ring.principals())
                counters["master/key_ring/revoked"] = len(self.revoked)
        counters.update({f"transport/{k}": v for k, v in self.runtime.metrics().items()})
        return counters

    def uptime(self) -> float:
        """Seconds since the master started."""
        return self.runtime.clock() - self._started

    def start(self) -> None:
        self.http.start()
        self.runtime.start(name="master-io")
        if self.ring is not None:
            threading.Thread(target=self._watch_key_ring, name="key-ring", daemon=True).start()
        log.info("master %s listening on %s (transport %s)", self.master_id, self.address, self.runtime.address)

    def stop(self) -> None:
        self._stopping.set()
        self.runtime.stop()
        self.runtime.join(5.0)
        self.http.close()
        self.registry.close()
