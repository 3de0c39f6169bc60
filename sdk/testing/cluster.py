"""`LocalCluster`: a real master (or several) and real agents as separate processes on
this machine.

It is what `corral local` runs and what integration tests use: every daemon is a
`python -m corral ...` process listening on loopback, so killing one (SIGKILL, SIGTERM,
SIGSTOP) and restarting it on the same work dir exercises the real failure paths. With
`masters` above 1 it also runs a ZooKeeper server of its own (`corral.testing.zookeeper`,
from the system's `zookeeper` package): the masters elect their leader there and keep
the registry there, and the agents follow the leader through its `zk://` URL.

`secure=True` (`corral local --secure`): keys, HTTP credentials and the key ring are
made under the work dir (`SecureSetup`), every daemon starts secured (the masters of
one cluster share one key pair), and `client_env()` gives a driver and the operator CLI
what they need (CORRAL_MASTER, CORRAL_KEY, CORRAL_MASTER_KEY, CORRAL_HTTP_PRINCIPAL,
CORRAL_HTTP_SECRET).
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from corral.security.keys import generate
from corral.security.tls import CA_ENV
from corral.testing.zookeeper import ZooKeeperServer

_LISTENING = re.compile(r"listening on (\S+:\d+) \(transport (\S+)\)")


class ClusterError(RuntimeError):
    """A daemon did not start, or a condition was not reached in time."""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; ClusterError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def get_json(address: str, path: str, timeout: float = 5.0, authorization: str | None = None,
             tls: ssl.SSLContext | None = None) -> Any:
    """A daemon's JSON endpoint (over HTTPS with `tls`, the context that checks it)."""
    request = urllib.request.Request(f"{'https' if tls else 'http'}://{address}{path}")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:
        return json.loads(response.read())


def basic_auth(principal: str, secret: str) -> str:
    """An `Authorization` header value for HTTP basic credentials."""
    return "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode()


@dataclass
class SecureSetup:
    """The keys and credentials of a secured local cluster, under `root`: key pairs in
    `keys/` (the master's, each agent's, and "framework" for the programs that run
    against it), the key ring the master admits in `keys/ring/` (every public key but
    the master's), and HTTP credentials for the principal "operator" and for "master"
    (the master's own, which it reads the agents' sandboxes with). Made once and reused,
    so a cluster restarted on its work dir keeps its keys."""

    root: Path
    operator_secret: str = ""

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def ring(self) -> Path:
        return self.keys / "ring"

    @property
    def master_secret(self) -> Path:
        return self.keys / "master.key_secret"

    @property
    def master_public(self) -> Path:
        return self.keys / "master.key"

    @property
    def framework_key(self) -> Path:
        return self.key_of("framework")

    @property
    def http_credentials(self) -> Path:
        return self.root / "http-credentials.json"

    @property
    def operator_auth(self) -> str:
        return f"operator:{self.operator_secret}"

    @property
    def master_http_credential(self) -> Path:
        """The master's `--agent-http-credential`."""
        return self.root / "master-http-credential.json"

    def authorization(self) -> str:
        return basic_auth("operator", self.operator_secret)

    @classmethod
    def create(cls, root: Path) -> "SecureSetup":
        setup = cls(Path(root))
        setup.ring.mkdir(parents=True, exist_ok=True)
        if not setup.master_secret.exists():
            generate(setup.keys, ["master"])
        setup.key_of("framework")
        if not setup.http_credentials.exists():
            master = {"principal": "master", "secret": secrets.token_urlsafe(24)}
            _write_private(setup.master_http_credential, master)
            _write_private(setup.http_credentials, {"credentials": [
                {"principal": "operator", "secret": secrets.token_urlsafe(24)}, master]})
        setup.operator_secret = json.loads(setup.http_credentials.read_text())["credentials"][0]["secret"]
        return setup

    def key_of(self, name: str) -> Path:
        """`name`'s key pair (its secret file), made and admitted in the ring if new."""
        secret = self.keys / f"{name}.key_secret"
        if not secret.exists():
            (public,) = generate(self.keys, [name])
            shutil.copyfile(public, self.ring / public.name)
        return secret


def _write_private(path: Path, doc: Any) -> None:
    """A new JSON file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out)


@dataclass
class Daemon:
    """One `corral master|agent` process; restartable on the same work dir."""

    name: str
    argv: list[str]
    work_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[str] | None = None
    address: str = ""
    transport: str = ""
    _lines: list[str] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> None:
        """Start the process; a restart comes back on the same ports (HTTP and transport)."""
        if self.address:
            self.argv = _pin_ports(self.argv, self.address, self.transport)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.work_dir / f"{self.name}.log", "ab")
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                        text=True, env=self.env)
        log.close()
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self._lines.append(line)
                match = _LISTENING.search(line)
                if match and not ready.is_set():
                    self.address, self.transport = match.group(1), match.group(2)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True, name=f"{self.name}-stdout").start()
        if not ready.wait(timeout) or not self.address:
            self.kill()
            raise ClusterError(f"{self.name} did not start; see {self.work_dir / (self.name + '.log')}")

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the daemon's log (stderr)."""
        try:
            text = (self.work_dir / f"{self.name}.log").read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when a machine's process dies."""
        self.signal(signal.SIGKILL)
        self.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.kill()

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


def _pin_ports(argv: list[str], address: str, transport: str) -> list[str]:
    """`argv` with --port and --transport-port set to the ones the daemon had."""
    pinned = list(argv)
    for flag, value in (("--port", address.rpartition(":")[2]), ("--transport-port", transport.rpartition(":")[2])):
        if flag in pinned:
            pinned[pinned.index(flag) + 1] = value
        else:
            pinned += [flag, value]
    return pinned


def agent_ports(resources: str, index: int) -> str:
    """`resources` for the `index`-th agent (from 0) on one host: its `ports` moved up by
    `index` times the span they cover, so that no two agents offer the same port.
    ValueError when that goes past port 65535."""
    from corral.resources import Resources

    parsed = Resources.parse(resources)
    spans = parsed.ports
    if not spans or index == 0:
        return resources
    width = spans[-1][1] - spans[0][0] + 1
    shift = index * width
    if spans[-1][1] + shift > 65535:
        raise ValueError(f"agent {index + 1} would need ports past 65535 (resources {resources!r})")
    moved = ",".join(f"{b + shift}-{e + shift}" for b, e in spans)
    return str(parsed - Resources.parse("ports:[" + ",".join(f"{b}-{e}" for b, e in spans) + "]")
               + Resources.parse(f"ports:[{moved}]"))


class LocalCluster:
    """`masters` masters (several: with a ZooKeeper server of their own) and `agents`
    agents, each a separate process, on loopback. Agents started with the cluster's
    `resources` get ports of their own (`agent_ports`)."""

    def __init__(self, work_dir: Path, agents: int = 1, *, resources: str = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]",
                 port: int = 0, ip: str = "127.0.0.1", log_level: str = "INFO", extra_env: dict[str, str] | None = None,
                 master_flags: list[str] | None = None, agent_flags: list[str] | None = None, masters: int = 1,
                 zk_session_timeout: float | None = None, secure: bool = False,
                 tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: a certificate and its key (PEM) every daemon serves HTTPS with; the
        agents and `get` check it as their CA."""
        self.work_dir = Path(work_dir).absolute()
        self.tls = tls
        tls_flags = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
        master_flags = [*tls_flags, *(master_flags or [])]
        agent_flags = [*tls_flags, *(agent_flags or [])]
        extra_env = {**(extra_env or {}), **({CA_ENV: str(tls[0])} if tls else {})}
        #: the keys and credentials of a secured cluster (None: plaintext)
        self.secure = SecureSetup.create(self.work_dir / "security") if secure else None
        if self.secure is not None:
            master_flags = ["--key", str(self.secure.master_secret), "--keys", str(self.secure.ring),
                            "--http-credentials", str(self.secure.http_credentials),
                            "--agent-http-credential", str(self.secure.master_http_credential), *(master_flags or [])]
        self.ip = ip
        self.port = port
        self.resources = resources
        self.env = dict(os.environ, **(extra_env or {}))
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self._base = [sys.executable, "-m", "corral", "--log-level", log_level]
        #: the cluster's own ZooKeeper server, with several masters
        self.zookeeper: ZooKeeperServer | None = None
        election: list[str] = []
        if masters > 1:
            self.zookeeper = ZooKeeperServer(self.work_dir / "zookeeper")
            election = ["--zk", self.zookeeper.url()]
            if zk_session_timeout is not None:
                election += ["--zk-session-timeout", str(zk_session_timeout)]
        self.masters = [
            Daemon(name, [*self._base, "master", "--ip", ip, "--port", str(port + i if port else 0),
                          "--work-dir", str(self.work_dir / name), *election, *(master_flags or [])],
                   self.work_dir / name, self.env)
            for i, name in enumerate(["master"] if masters == 1 else [f"master-{n + 1}" for n in range(masters)])
        ]
        self.agents: list[Daemon] = []
        #: extra `corral agent` flags for every agent (e.g. ["--gc-delay", "1"])
        self.agent_flags = list(agent_flags or [])
        self._agent_count = agents

    @property
    def master_url(self) -> str:
        """What agents, drivers and the CLI name to find the (leading) master: its
        HOST:PORT, or with several masters the zk:// URL."""
        if self.zookeeper is not None:
            return self.zookeeper.url()
        return f"https://{self.masters[0].address}" if self.tls else self.masters[0].address

    @property
    def master(self) -> Daemon:
        """The master (with several: the one whose /info says it leads, or the first
        when none does)."""
        return self.leader() or self.masters[0]

    @property
    def master_address(self) -> str:
        """The HTTP address of the (leading) master."""
        return self.master.address

    def leader(self) -> Daemon | None:
        """The master that says it leads (None when none does)."""
        if len(self.masters) == 1:
            return self.masters[0]
        for daemon in self.masters:
            if daemon.alive() and daemon.address:
                try:
                    if get_json(daemon.address, "/info", timeout=1.0, tls=self._tls_context()).get("leader"):
                        return daemon
                except (OSError, ValueError):
                    continue
        return None

    def wait_leader(self, timeout: float = 30.0, other_than: Daemon | None = None) -> Daemon:
        """Wait until a master (other than `other_than`) leads; that master."""
        return wait_for(lambda: (d := self.leader()) is not None and d is not other_than and d, timeout,
                        "a leading master" + (f" other than {other_than.name}" if other_than else ""))

    def add_agent(self, resources: str | None = None, attributes: str = "", *, ip: str | None = None,
                  wrapper: list[str] | None = None) -> Daemon:
        """Start one more agent; `wrapper` prefixes its command (e.g. `ip netns exec NS` to
        run it on another test host), `ip` is where it listens."""
        index = len(self.agents) + 1
        port = self.port + len(self.masters) - 1 + index if self.port else 0
        argv = [*(wrapper or []), *self._base, "agent", "--master", self.master_url, "--ip", ip or self.ip,
                "--port", str(port), "--work-dir", str(self.work_dir / f"agent-{index}"),
                "--resources", resources or agent_ports(self.resources, index - 1), *self.agent_flags]
        if self.secure is not None:
            argv += ["--key", str(self.secure.key_of(f"agent-{index}")), "--master-key", str(self.secure.master_public),
                     "--http-credentials", str(self.secure.http_credentials)]
        if attributes:
            argv += ["--attributes", attributes]
        agent = Daemon(f"agent-{index}", argv, self.work_dir / f"agent-{index}", self.env)
        agent.start()
        self.agents.append(agent)
        return agent

    def start(self, timeout: float = 30.0) -> "LocalCluster":
        if self.zookeeper is not None:
            self.zookeeper.start()
        for master in self.masters:
            master.start(timeout)
        if self.zookeeper is not None:
            self.wait_leader(timeout)
        for _ in range(self._agent_count):
            self.add_agent()
        self.wait_agents(len(self.agents), timeout)
        return self

    def state(self) -> dict[str, Any]:
        return self.get(self.master.address, "/state")

    def get(self, address: str, path: str) -> Any:
        """A daemon's JSON endpoint, with the operator's credentials on a secured cluster."""
        return get_json(address, path, authorization=self.secure.authorization() if self.secure else None,
                        tls=self._tls_context())

    def _tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None

    def client_env(self) -> dict[str, str]:
        """What a program that drives a framework, or the operator CLI, needs in its
        environment: the master's address (and the CA of its certificate, with TLS) and,
        on a secured cluster, the framework's key pair, the master's key and the
        operator's HTTP credentials."""
        env = {"CORRAL_MASTER": self.master_url}
        if self.tls:
            env[CA_ENV] = str(self.tls[0])
        if self.secure is not None:
            env.update(CORRAL_KEY=str(self.secure.framework_key), CORRAL_MASTER_KEY=str(self.secure.master_public),
                       CORRAL_HTTP_PRINCIPAL="operator", CORRAL_HTTP_SECRET=self.secure.operator_secret)
        return env

    def diagnostics(self, lines: int = 40) -> str:
        """What a failed test needs to see: the master's frameworks (connected or not,
        offers held, tasks and their states) and the tail of every daemon's log."""
        parts = []
        try:
            state = self.state()
            for fw in state["frameworks"]:
                tasks = ", ".join(f"{t['id']}={t['state']}" for t in fw["tasks"]) or "none"
                parts.append(f"framework {fw['id']} ({fw['name']}): active={fw['active']} "
                             f"offers={fw['offers']} tasks: {tasks}")
        except Exception as exc:  # the master may be the thing that failed
            parts.append(f"(master /state unavailable: {exc})")
        for daemon in [*self.masters, *self.agents]:
            parts.append(f"--- {daemon.name} log (last {lines} lines) ---\n{daemon.log_tail(lines)}")
        return "\n".join(parts)

    def registered_agents(self) -> int:
        return sum(1 for a in self.state()["agents"] if a["state"] == "registered")

    def wait_agents(self, count: int, timeout: float = 30.0) -> None:
        wait_for(lambda: self.registered_agents() >= count, timeout, f"{count} registered agent(s)")

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        for master in self.masters:
            if master.process is not None and master.alive():
                master.signal(signal.SIGCONT)  # (a test may have left one stopped)
            master.stop()
        if self.zookeeper is not None:
            self.zookeeper.stop()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
