"""The agent daemon: runs the agent engine on a transport, performs its actions with
the containerizer and the checkpointer, follows the master through the detector, and
serves HTTP on the agent's one address (`/health`, `/state`, `/info`, `/flags`,
`/metrics` (Prometheus), `/metrics/snapshot`, `/files/browse`, `/files/read`).

Checkpoint actions are performed synchronously on the I/O thread, in the order the
engine emitted them, so each is on disk before the sends that follow it. A checkpoint
that cannot be written ends the process (as a failed CHECK does in Mesos): carrying on
would ack updates that are not durable.

On start, before it looks for the master, the daemon recovers: same boot id -> the
checkpoints are read (a corrupt file stops the start with an error naming it), the
executors still running are adopted by the containerizer and the engine is rebuilt
(`AgentEngine.recover`); a new boot id (the machine rebooted) -> the checkpoints are
discarded and the agent starts afresh.

Limits (`--enforce-limits`, on by default): a `LimitEnforcer` watches every container
against the limits the engine gives (cgroup v2 where usable, else process-tree RSS, and
sandbox disk); one over a limit is killed with SIGKILL and its exit carries the reason
(REASON_CONTAINER_LIMITATION_MEMORY / _DISK) to the engine.

Fetching: an executor whose command has `uris` is started only once the fetcher
(`corral.agent.fetcher`) has put them in its sandbox, on a thread of its own; a URI that
cannot be fetched fails the executor's tasks (REASON_CONTAINER_LAUNCH_FAILED) with a
message naming it.

Sandbox GC: the sandbox of a container that exited is scheduled for deletion after
`gc_delay`; a housekeeping thread deletes what is due and, every
`disk_watch_interval`, the oldest completed sandboxes while the work dir's filesystem
is fuller than `1 - gc_disk_headroom`. Sandboxes left by an earlier run (their
containers gone) are scheduled at start, aged by their modification time. A live
container's sandbox is never deleted; persistent volumes live outside the sandboxes.

Security (`AgentFlags.key` and `master_key`; off without them): every link runs over
CurveZMQ with the agent's key pair; the agent admits the master's key and its
executors' keys only. Each executor gets a key pair of its own, made from its token
(`ExecutorTokens`, keyed by a secret in the work dir, so a restarted agent admits the
executors it recovers), in its environment (CORRAL_EXECUTOR_KEY) with the agent's
public key (CORRAL_AGENT_KEY): it can register and speak only as itself.
`http_credentials` makes every endpoint but `/health` and `/info` ask for HTTP
credentials; `acls` say whose sandboxes each principal may read (access_sandboxes)."""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from http import HTTPStatus
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from corral import __version__
from corral.agent.checkpoint import BOOT_ID_PATH, Checkpointer, ProcessStamp, read_boot_id
from corral.agent.containerizer import Container, Containerizer, LaunchError
from corral.agent.fetcher import Fetcher, FetchError
from corral.agent.gc import DEFAULT_GC_DELAY, DEFAULT_GC_DISK_HEADROOM, SandboxGC, filesystem_usage, iter_sandboxes, \
    remove_sandbox
from corral.agent.limits import Limitation, LimitEnforcer, detect_host_cgroup2, limits_enforcer
from corral.agent.volumes import VolumeError, Volumes
from corral.agent.files import MAX_READ, FileAccessError, SandboxFiles, int_param
from corral.runtime.detector import master_detector
from corral.engines.agent import (
    LinkVolumes,
    UpdateVolumes,
    AgentConfig,
    AgentEngine,
    ContainerLimits,
    KillContainer,
    LaunchExecutor,
    RecoverMode,
    authorize_sandbox,
    executor_principal,
)
from corral.engines.authorization import Authorizer
from corral.engines.base import MasterLost
from corral.net.http import REQUEST_PRINCIPAL, HttpServer, Reply
from corral.net.zookeeper import mask_credentials
from corral.metrics import AgentMetrics
from corral.protos import corral_pb2 as pb
from corral.resources import Resources, attributes_to_dict
from corral.runtime import Runtime
from corral.security.acls import Acls
from corral.security.tls import https
from corral.security.credentials import ExecutorTokens, HttpCredentials, HttpGuard
from corral.security.keys import KeyFileError
from corral.security.links import AGENT_KEY_ENV, EXECUTOR_KEY_ENV, MASTER_PRINCIPAL, Credential, KeyTable

log = logging.getLogger(__name__)


@dataclass
class AgentFlags:
    master: str
    work_dir: Path
    resources: Resources
    attributes: list[pb.Attribute] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 5051
    transport_port: int = 0
    hostname: str = field(default_factory=socket.gethostname)
    recover: RecoverMode = RecoverMode.RECONNECT
    #: after a restart, how long recovered executors get to reregister
    recovery_timeout: float = 2.0
    #: where the machine's boot id is read (tests point it at a file of their own)
    boot_id_file: Path = BOOT_ID_PATH
    #: kill containers that go over their memory or sandbox disk
    enforce_limits: bool = True
    #: seconds between memory checks (RSS mode; with cgroup v2 the kernel enforces)
    limit_check_interval: float = 0.25
    #: seconds between measurements of each sandbox's disk usage
    container_disk_watch_interval: float = 15.0
    #: seconds a completed sandbox is kept
    gc_delay: float = DEFAULT_GC_DELAY
    #: fraction of the work dir's filesystem kept free by deleting completed sandboxes early
    gc_disk_headroom: float = DEFAULT_GC_DISK_HEADROOM
    #: seconds between checks of the work dir's filesystem usage
    disk_watch_interval: float = 60.0
    #: the address the master and executors are told to reach the agent at, when it is
    #: not `host` (e.g. listening on 0.0.0.0)
    advertise_ip: str | None = None
    #: the agent's CurveZMQ key pair (NAME.key_secret) and the master's public key
    #: (its .key file): both turn security on
    key: Path | None = None
    master_key: Path | None = None
    #: whose sandboxes each HTTP principal may read (Mesos-shaped JSON; None: anyone's)
    acls: Path | None = None
    #: HTTP credentials (basic secrets, bearer tokens); None: HTTP is not authenticated
    http_credentials: Path | None = None
    #: HTTPS on the HTTP port: the certificate (PEM, with its chain) and its key
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: when the agent runs as root, run each container as its user (its executor's
    #: command user, else its framework's), as Mesos' --switch_user
    switch_user: bool = True


class AgentDaemon:
    def __init__(self, flags: AgentFlags, config: AgentConfig | None = None) -> None:
        """KeyFileError, AclError, CredentialsError or TlsError (naming the file) when a
        security file cannot be used."""
        # absolute: executors run in their sandboxes, where a relative path means another place
        self.flags = flags = replace(flags, work_dir=flags.work_dir.absolute())
        self.config = replace(config or AgentConfig(command_executor=(sys.executable, "-m", "corral.executors.command")),
                              recovery_timeout=flags.recovery_timeout)
        flags.work_dir.mkdir(parents=True, exist_ok=True)
        guard = HttpGuard(HttpCredentials(flags.http_credentials)) if flags.http_credentials is not None else None
        self.http = HttpServer(flags.host, flags.port, {}, authenticate=guard,
                               ssl_context=https(flags.tls_cert, flags.tls_key))
        # the master reaches our HTTP (sandbox files) at our transport's host and this port
        info = pb.AgentInfo(hostname=flags.hostname, port=self.http.port, resources=flags.resources.to_protos(),
                            attributes=flags.attributes)
        curve = None
        #: security on: the keys the agent admits (the master's, its executors'), how its
        #: executors' keys are made, and the key each running container's executor has
        self.credential: Credential | None = None
        self.admitted = KeyTable()
        self.tokens: ExecutorTokens | None = None
        self._container_keys: dict[str, bytes] = {}
        if flags.key is not None or flags.master_key is not None:
            if flags.key is None or flags.master_key is None:
                raise KeyFileError("a secured agent needs both --key (its key pair) and --master-key (the master's "
                                   "public key)")
            self.credential = Credential.load(flags.key, flags.master_key)
            self.admitted.add(self.credential.master_key, MASTER_PRINCIPAL)
            self.tokens = ExecutorTokens.for_work_dir(flags.work_dir / "executor-token.key")
            curve = self.credential.links(self.admitted, self._server_key)
        acls = Acls.load(flags.acls) if flags.acls is not None else None
        #: what each HTTP principal may read (access_sandboxes), and the denials counted
        self.authorizer = Authorizer(acls)
        self.runtime = Runtime(lambda address: AgentEngine(info, address, self.config), host=flags.host,
                               port=flags.transport_port, advertise=flags.advertise_ip, curve=curve)
        self.engine: AgentEngine = self.runtime.engine  # type: ignore[assignment]
        self._started = self.runtime.clock()
        self.containerizer = Containerizer(flags.work_dir, self._container_exited)
        self.fetcher = Fetcher(flags.work_dir / "fetch-cache")
        #: containers whose URIs are being fetched -> killed meanwhile
        self._fetching: dict[str, bool] = {}
        self.enforcer: LimitEnforcer | None = None
        if flags.enforce_limits:
            self.enforcer = limits_enforcer(self._limit_exceeded, self._current_limits, flags.limit_check_interval,
                                            flags.container_disk_watch_interval, detect_host_cgroup2())
        self.gc = SandboxGC(flags.gc_delay, flags.gc_disk_headroom, self.runtime.clock)
        self._gc_lock = threading.Lock()
        self._gc_wake = threading.Event()
        self._stopping = threading.Event()
        self._gc_thread: threading.Thread | None = None
        self.checkpointer = Checkpointer(flags.work_dir)
        self.volumes = Volumes(flags.work_dir)
        self.runtime.add_performers({
            LaunchExecutor: self._launch,
            KillContainer: self._kill,
            MasterLost: lambda _a: self.detector.detect(),
            UpdateVolumes: self._update_volumes,
            LinkVolumes: self._link_volumes,
            **{kind: partial(self._durably, write) for kind, write in self.checkpointer.performers().items()},
        })
        self.detector = master_detector(flags.master, self._master_found)
        self.prometheus = AgentMetrics(self)
        self.http.routes.update({
            "/health": lambda q, b: Reply(body=b"", content_type="text/plain"),
            "/state": lambda q, b: Reply.json(self.state()),
            "/info": lambda q, b: Reply.json({"id": self.engine.agent_id, "transport": self.runtime.address,
                                              "version": __version__}),
            "/flags": lambda q, b: Reply.json(self.flags_view()),
            "/metrics": lambda q, b: Reply(body=self.prometheus.text(), content_type="text/plain; version=0.0.4"),
            "/metrics/snapshot": lambda q, b: Reply.json(self.metrics()),
            "/files/browse": self._browse,
            "/files/read": self._read,
        })
        self.files = SandboxFiles(self.containerizer.sandboxes_root)
        self.address = f"{flags.advertise_ip}:{self.http.port}" if flags.advertise_ip else self.http.address

    # -- CurveZMQ keys --------------------------------------------------------------
    def _server_key(self, address: str) -> bytes | None:
        """On the I/O thread: the CurveZMQ key of the peer at `address`: an executor's
        own, else the master's."""
        assert self.credential is not None and self.tokens is not None
        for (fid, eid), executor in self.engine.executors.items():
            if executor.transport == address:
                return self.tokens.key_pair(fid, eid).public
        return self.credential.master_key

    def _admit_executor(self, container_id: str, framework_id: str, executor_id: str) -> dict[str, str]:
        """Admit the executor of a container by its own key; the environment that
        hands it the key pair and the agent's public key."""
        assert self.credential is not None and self.tokens is not None
        pair = self.tokens.key_pair(framework_id, executor_id)
        self.admitted.add(pair.public, executor_principal(framework_id, executor_id))
        self._container_keys[container_id] = pair.public
        return {EXECUTOR_KEY_ENV: (pair.secret or b"").decode("ascii"),
                AGENT_KEY_ENV: self.credential.pair.public.decode("ascii")}

    def _forget_executor_key(self, container_id: str) -> None:
        public = self._container_keys.pop(container_id, None)
        if public is not None and public not in self._container_keys.values():
            self.admitted.remove(public)

    # -- actions ------------------------------------------------------------------
    def _launch(self, action: LaunchExecutor) -> None:
        if action.executor.command.uris:  # fetched first, off the I/O thread (see corral.agent.fetcher)
            self._fetching[action.container_id] = False
            threading.Thread(target=self._fetch, args=(action,), name=f"fetch-{action.container_id}",
                             daemon=True).start()
        else:
            self._start(action)

    def _fetch(self, action: LaunchExecutor) -> None:
        sandbox = self.containerizer.sandbox_path(action.framework_id, action.executor.executor_id.value,
                                                  action.container_id)
        try:
            sandbox.mkdir(parents=True, exist_ok=False)
            self.fetcher.fetch(action.executor.command.uris, sandbox)
        except (FetchError, OSError) as exc:
            log.error("container %s: %s", action.container_id, exc)
            with self._gc_lock:
                self.gc.schedule(sandbox)
            message = str(exc)
            self.runtime.call_soon(lambda: self._fetched(action, message))
            return
        self.runtime.call_soon(lambda: self._fetched(action, None))

    def _fetched(self, action: LaunchExecutor, error: str | None) -> None:
        """On the I/O thread, once the URIs are in the sandbox (or could not be)."""
        killed = self._fetching.pop(action.container_id, False)
        now = self.runtime.clock()
        if error is not None:
            self.engine.executor_launch_failed(action.container_id, error, now)
        elif killed:
            self.engine.executor_exited(action.container_id, -9, "killed while its URIs were being fetched", now)
        else:
            self._start(action, fetched=True)

    def _kill(self, action: KillContainer) -> None:
        if action.container_id in self._fetching:
            self._fetching[action.container_id] = True  # it will not start
        else:
            self.containerizer.kill(action.container_id, action.grace)

    def _start(self, action: LaunchExecutor, fetched: bool = False) -> None:
        environment = action.environment
        if self.credential is not None:
            environment = {**environment, **self._admit_executor(action.container_id, action.framework_id,
                                                                 action.executor.executor_id.value)}
        try:
            prefix = self.enforcer.prepare(action.container_id) if self.enforcer is not None else []
            container = self.containerizer.launch(action.container_id, action.framework_id, action.executor,
                                                  environment, prefix, fetched, self._user_of(action),
                                                  task_user_only=action.command_executor)
        except (LaunchError, OSError) as exc:
            log.error("%s", exc)
            self._forget_executor_key(action.container_id)
            self.engine.executor_launch_failed(action.container_id, str(exc), self.runtime.clock())
            return
        if self.enforcer is not None:
            self.enforcer.attach(action.container_id, container.pid, container.sandbox, action.limits)
        stamp = self.containerizer.stamp(action.container_id)
        if action.checkpoint and stamp is not None:
            self._durably(self.checkpointer.write_pid, action.framework_id, action.executor.executor_id.value,
                          action.container_id, stamp)

    def _user_of(self, action: LaunchExecutor) -> str | None:
        """The user a container runs as: its own when the agent switches users (as
        root), else the agent's (None)."""
        if self.flags.switch_user and action.user and os.geteuid() == 0:
            return action.user
        return None

    @staticmethod
    def _durably(write: Any, *args: Any) -> None:
        try:
            write(*args)
        except OSError as exc:
            log.critical("cannot write a checkpoint (%s): exiting, as going on would acknowledge status updates "
                         "that are not on disk", exc)
            logging.shutdown()
            os._exit(70)

    def _update_volumes(self, action: UpdateVolumes) -> None:
        for role, persistence_id in action.create:
            self.volumes.create(role, persistence_id)
        for role, persistence_id in action.destroy:
            self.volumes.destroy(role, persistence_id)

    def _link_volumes(self, action: LinkVolumes) -> None:
        sandbox = self.containerizer.sandbox_of(action.container_id)
        if sandbox is None:
            log.error("cannot link volumes into container %s: no sandbox", action.container_id)
            return
        for role, persistence_id, container_path in action.volumes:
            try:
                self.volumes.link(sandbox, role, persistence_id, container_path)
            except (VolumeError, OSError) as exc:
                log.error("container %s: %s", action.container_id, exc)

    def _container_exited(self, container: Container, status: int, message: str) -> None:
        self.runtime.call_soon(self._forget_executor_key, container.id)
        limitation = self.enforcer.detach(container.id) if self.enforcer is not None else None
        reason = pb.TaskStatus.REASON_EXECUTOR_TERMINATED
        if limitation is not None:
            reason, message = limitation.reason, limitation.message
        if container.sandbox is not None:
            with self._gc_lock:
                self.gc.schedule(container.sandbox)
            self._gc_wake.set()
        self.runtime.call_soon(lambda: self.engine.executor_exited(container.id, status, message, self.runtime.clock(),
                                                                   reason))

    # -- limits ---------------------------------------------------------------------
    def _current_limits(self) -> dict[str, ContainerLimits]:
        with self.runtime.lock:
            return self.engine.container_limits()

    def _limit_exceeded(self, container_id: str, limitation: Limitation) -> None:
        self.containerizer.kill(container_id, 0.0)

    # -- sandbox garbage collection ---------------------------------------------------
    def _remove_sandbox(self, sandbox: Path) -> None:
        if sandbox in self.containerizer.live_sandboxes():
            raise ValueError(f"{sandbox} belongs to a live container")
        remove_sandbox(self.containerizer.sandboxes_root, sandbox)
        log.info("garbage-collected sandbox %s", sandbox)

    def _schedule_old_sandboxes(self) -> None:
        """Sandboxes of containers that ended before this agent started."""
        live = self.containerizer.live_sandboxes()
        with self._gc_lock:
            for sandbox in iter_sandboxes(self.containerizer.sandboxes_root):
                if sandbox not in live:
                    try:
                        age = time.time() - sandbox.stat().st_mtime  # (a file's time is a date)
                    except OSError:
                        continue
                    self.gc.schedule(sandbox, self.runtime.clock() - age)

    def _collect_garbage(self) -> None:
        next_watch = 0.0
        while not self._stopping.is_set():
            now = self.runtime.clock()
            pressure = now >= next_watch
            if pressure:
                next_watch = now + self.flags.disk_watch_interval
            with self._gc_lock:
                due = self.gc.next_due()
                if pressure or (due is not None and due <= now):
                    self.gc.collect(lambda: filesystem_usage(self.flags.work_dir) if pressure else 0.0,
                                    self._remove_sandbox)
                due = self.gc.next_due()
            wait = next_watch - now if due is None else min(next_watch, due) - now
            self._gc_wake.wait(max(0.0, wait))
            self._gc_wake.clear()

    def _master_found(self, transport: str) -> None:
        self.runtime.call_soon(lambda: self.engine.connect(transport, self.runtime.clock()))

    # -- sandbox files ------------------------------------------------------------------
    def _authorize_sandbox(self, query: dict[str, str]) -> None:
        """access_sandboxes for the request's principal (Denied: a 403); with
        `framework_id` (the master asking for a caller it authorised for that framework's
        sandboxes), a path that leads out of them (through a link) is refused too."""
        path = query.get("path", "")
        framework_id = self.files.framework_of(path)
        confined = query.get("framework_id")
        if confined is not None and framework_id != confined:
            raise FileAccessError(HTTPStatus.FORBIDDEN, f"path {path!r} leads out of the sandboxes of framework "
                                                        f"{confined}")
        with self.runtime.lock:
            authorize_sandbox(self.authorizer, self.engine.frameworks, framework_id, REQUEST_PRINCIPAL.get())

    def _browse(self, query: dict[str, str], body: bytes) -> Reply:
        try:
            self._authorize_sandbox(query)
            return Reply.json(self.files.browse(query.get("path", "")))
        except FileAccessError as exc:
            return Reply.error(HTTPStatus(exc.status), str(exc))

    def _read(self, query: dict[str, str], body: bytes) -> Reply:
        try:
            self._authorize_sandbox(query)
            return Reply.json(self.files.read(query.get("path", ""), int_param(query, "offset", -1),
                                              int_param(query, "length", MAX_READ)))
        except FileAccessError as exc:
            return Reply.error(HTTPStatus(exc.status), str(exc))

    # -- views ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self.runtime.lock:
            view = self.engine.snapshot()
        view.update(version=__version__, address=self.address, resources=self.flags.resources.to_dict(),
                    work_dir=str(self.flags.work_dir))
        return view

    def uptime(self) -> float:
        """Seconds since the agent started."""
        return self.runtime.clock() - self._started

    def flags_view(self) -> dict[str, Any]:
        flags = {f.name: getattr(self.flags, f.name) for f in fields(self.flags)}  # (no deep copy of Resources)
        flags["work_dir"] = str(self.flags.work_dir)
        flags["boot_id_file"] = str(self.flags.boot_id_file)
        flags["master"] = mask_credentials(self.flags.master)
        for name in ("key", "master_key", "acls", "http_credentials", "tls_cert", "tls_key"):
            value = getattr(self.flags, name)
            flags[name] = None if value is None else str(value)
        flags["recover"] = self.flags.recover.value
        flags["resources"] = str(self.flags.resources)
        flags["attributes"] = attributes_to_dict(self.flags.attributes)
        return flags

    def metrics(self) -> dict[str, Any]:
        with self.runtime.lock:
            counters = {f"agent/{k}": v for k, v in self.engine.counters.items()}
            counters["agent/registered"] = int(self.engine.connection.value == "registered")
            counters["agent/executors"] = len(self.engine.executors)
            counters["agent/tasks"] = len(self.engine.tasks)
            counters["agent/pending_status_updates"] = len(self.engine.updates)
            counters.update({f"agent/denied/{action}": n for action, n in self.authorizer.denials.items()})
        counters.update({f"transport/{k}": v for k, v in self.runtime.metrics().items()})
        return counters

    # -- lifecycle ------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild from checkpoints (CheckpointError if one is corrupt); called by `start`."""
        boot_id = read_boot_id(self.flags.boot_id_file)
        if self.checkpointer.exists():
            previous = self.checkpointer.read_boot_id()
            if previous != boot_id:
                log.warning("boot id changed (%s -> %s): the machine restarted; discarding the checkpoints in %s and "
                            "starting as a new agent", previous, boot_id, self.checkpointer.root)
                self.checkpointer.discard()
            else:
                state = self.checkpointer.read()
                live = {
                    run.container_id for run in state.runs
                    if not run.exited and run.pid
                    and self.containerizer.adopt(run.container_id, ProcessStamp(run.pid, run.start_time),
                                                 self.containerizer.sandbox_path(run.framework_id,
                                                                                 run.info.executor_id.value,
                                                                                 run.container_id))
                }
                if self.credential is not None:  # the recovered executors connect again with their keys
                    for run in state.runs:
                        if run.container_id in live:
                            self._admit_executor(run.container_id, run.framework_id, run.info.executor_id.value)
                if self.enforcer is not None:
                    for run in state.runs:
                        if run.container_id in live:  # limits follow from the engine at the first check
                            self.enforcer.attach(run.container_id, run.pid,
                                                 self.containerizer.sandbox_of(run.container_id), ContainerLimits())
                with self.runtime.lock:
                    self.engine.recover(state, live, self.flags.recover, self.runtime.clock())
                log.info("recovered agent %s: %d framework(s), %d task(s), %d live executor(s) (%s)",
                         self.engine.agent_id, len(state.frameworks), len(self.engine.tasks), len(live),
                         self.flags.recover.value)
        self.checkpointer.write_boot_id(boot_id)

    def start(self) -> None:
        self.recover()
        self._schedule_old_sandboxes()
        self._gc_thread = threading.Thread(target=self._collect_garbage, name="sandbox-gc", daemon=True)
        self._gc_thread.start()
        if self.enforcer is not None:
            self.enforcer.start()
        self.http.start()
        self.runtime.start(name="agent-io")
        self.detector.detect()
        log.info("agent listening on %s (transport %s)", self.address, self.runtime.address)

    def stop(self, grace: float = 3.0) -> None:
        self._stopping.set()
        self._gc_wake.set()
        if self.enforcer is not None:
            self.enforcer.stop()
        self.detector.stop()
        self.containerizer.kill_all(grace)
        self.containerizer.wait_all(grace + 2.0)
        self.runtime.stop()
        self.runtime.join(5.0)
        self.http.close()
