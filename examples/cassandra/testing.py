"""Real processes for tests and benches.

`LocalRing`: store nodes alone, each `python -m corral.examples.cassandra node ...` on a
free loopback port with its own data directory; `kill` sends SIGKILL, `restart` starts
it again on the same port and data, and `wait_normal` polls the ring until every
running node is UN.

`LocalService`: a corral `LocalCluster` (agents with distinct port ranges, a master
that notices a lost agent within about a second) and the framework's scheduler as a
separate process, with helpers over its HTTP API and the master's view of the
service's reservations and volumes.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.examples.cassandra.client import Client, StoreError
from corral.testing.cluster import wait_for


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class NodeProcess:
    name: str
    address: str
    data: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.data.parent / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen([*self.argv, *self.extra], stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, env=env)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class LocalRing:
    """`count` nodes on loopback under `root`; the first two are the seeds."""

    def __init__(self, root: Path, count: int = 3, *, replication: int = 3, gossip_interval: float = 0.2,
                 ring_delay: float = 1.5, num_tokens: int = 16, extra_flags: list[str] | None = None) -> None:
        self.root = Path(root)
        self.replication = replication
        self.flags = ["--gossip-interval", str(gossip_interval), "--ring-delay", str(ring_delay),
                      "--num-tokens", str(num_tokens), "--replication", str(replication), *(extra_flags or [])]
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.nodes: list[NodeProcess] = []
        self.count = count
        self.seeds: list[str] = []

    def add_node(self, extra: list[str] | None = None) -> NodeProcess:
        index = len(self.nodes)
        address = f"127.0.0.1:{free_port()}"
        if len(self.seeds) < 2:
            self.seeds.append(address)
        name = f"node-{index}"
        argv = [sys.executable, "-m", "corral.examples.cassandra", "node", "--name", name, "--listen", address,
                "--data", str(self.root / name), "--seeds", ",".join(self.seeds), *self.flags]
        node = NodeProcess(name, address, self.root / name, argv, extra=list(extra or []))
        node.start(self.env)
        self.nodes.append(node)
        return node

    def start(self, timeout: float = 60.0) -> "LocalRing":
        for _ in range(self.count):
            self.add_node()
            self.wait_normal(timeout)
        return self

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes if n.alive()]

    def client(self, **kwargs: Any) -> Client:
        return Client(self.addresses, **kwargs)

    def states(self, via: str | None = None) -> dict[str, str]:
        """name -> state as `via` (default: any running node) sees the ring; {} if none answers."""
        try:
            with Client([via] if via else self.addresses, connect_timeout=1.0, token_aware=via is None) as client:
                return {n["name"]: n["state"] for n in client.ring()["nodes"]}
        except StoreError:
            return {}

    def wait_normal(self, timeout: float = 60.0) -> None:
        """Until every running node serves and sees every running node UN."""
        running = sorted(n.name for n in self.nodes if n.alive())

        def settled() -> bool:
            for node in self.nodes:
                if node.alive():
                    try:
                        with Client([node.address], connect_timeout=1.0, token_aware=False) as client:
                            info = client.ring_view(node.address)
                    except StoreError:
                        return False
                    if info["mode"] != "NORMAL" or sorted(
                            n["name"] for n in info["nodes"] if n["state"] == "UN") != running:
                        return False
            return True
        wait_for(settled, timeout, f"nodes {running} all UN")

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        self.nodes[index].start(self.env)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for node in self.nodes:
            path = self.root / f"{node.name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- {node.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    def __enter__(self) -> "LocalRing":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalService:
    """A corral cluster (a master and `agents` agents, each with its own port range) and
    the framework's scheduler as a separate process; restartable, killable."""

    def __init__(self, root: Path, agents: int = 4, *, nodes: int = 3, replication: int = 3,
                 node_resources: str = "cpus:0.5;mem:256;disk:256", scheduler_flags: list[str] | None = None,
                 agent_resources: str = "cpus:2;mem:2048;disk:2048") -> None:
        from corral.testing.cluster import LocalCluster

        self.root = Path(root)
        self.cluster = LocalCluster(self.root / "cluster", agents=0, master_flags=[
            "--agent-ping-timeout", "0.5", "--max-agent-ping-timeouts", "2", "--allocation-interval", "0.2"])
        self.agent_count = agents
        self.agent_resources = agent_resources
        self.api_port = free_port()
        self.argv = [sys.executable, "-m", "corral.examples.cassandra", "scheduler", "--nodes", str(nodes),
                     "--replication", str(replication), "--node-resources", node_resources,
                     "--api-port", str(self.api_port), "--state-dir", str(self.root / "scheduler"),
                     "--node-gossip-interval", "0.2", "--node-ring-delay", "1.0", "--num-tokens", "8",
                     *(scheduler_flags or [])]
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")

    @property
    def api(self) -> str:
        return f"127.0.0.1:{self.api_port}"

    def start(self) -> "LocalService":
        self.cluster.start()
        for i in range(self.agent_count):
            self.add_agent(i)
        self.cluster.wait_agents(self.agent_count)
        self.start_scheduler()
        return self

    def add_agent(self, index: int) -> None:
        ports = f"ports:[{32000 + 100 * index}-{32000 + 100 * index + 99}]"
        self.cluster.add_agent(resources=f"{self.agent_resources};{ports}")

    def start_scheduler(self) -> None:
        if "--master" not in self.argv:
            self.argv += ["--master", self.cluster.master_address]
        with open(self.root / "scheduler.log", "ab") as log:
            self.scheduler = subprocess.Popen(self.argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                              env=self.env)
        wait_for(lambda: self.request("GET", "/v1/plans") is not None, 30, "the scheduler's API")

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(10)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The API's JSON answer; None when the scheduler does not answer; an error
        answer as {"error": ..., "status": code}."""
        import json
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.api}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read()), status=exc.code)
        except OSError:
            return None

    def plan_status(self, name: str = "deploy") -> str | None:
        plan = self.request("GET", f"/v1/plans/{name}")
        return plan.get("status") if plan else None

    def wait_plan(self, name: str = "deploy", status: str = "COMPLETE", timeout: float = 90.0) -> None:
        wait_for(lambda: self.plan_status(name) == status, timeout, f"plan {name} {status}")

    def pod(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/pod/{name}/info")

    def endpoints(self) -> list[str]:
        return self.request("GET", "/v1/endpoints")["address"]

    def agent_of(self, agent_id: str) -> Any:
        """The `Daemon` of an agent id."""
        transports = {a["id"]: a["transport"] for a in self.cluster.state()["agents"]}
        for daemon in self.cluster.agents:
            if daemon.transport and transports.get(agent_id, "").endswith(daemon.transport.rpartition(":")[2]):
                return daemon
        raise KeyError(agent_id)

    def reservations(self, role: str = "cassandra") -> dict[str, dict[str, Any]]:
        """agent id -> {"volumes": persistence ids, "reserved": the names of what is
        reserved, "scalars": name -> amount reserved beside the volumes}, for every agent
        holding resources reserved to `role` (the master's view)."""
        out = {}
        for agent in self.cluster.state()["agents"]:
            resources = agent.get("reserved_resources_full", {}).get(role, [])
            if resources:
                volumes = sorted(r["disk"]["persistence"]["id"] for r in resources
                                 if r.get("disk", {}).get("persistence"))
                scalars: dict[str, float] = {}
                for r in resources:
                    if "scalar" in r and not r.get("disk", {}).get("persistence"):
                        scalars[r["name"]] = round(scalars.get(r["name"], 0.0) + r["scalar"]["value"], 3)
                out[agent["id"]] = {"volumes": volumes, "reserved": sorted(r["name"] for r in resources),
                                    "scalars": scalars}
        return out

    def tasks(self) -> list[dict[str, Any]]:
        state = self.cluster.state()
        return [t for f in state["frameworks"] for t in f["tasks"]]

    def log_tail(self, lines: int = 60) -> str:
        path = self.root / "scheduler.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.send_signal(signal.SIGTERM)
            try:
                self.scheduler.wait(15)
            except subprocess.TimeoutExpired:
                self.kill_scheduler()
        self.cluster.stop()

    def __enter__(self) -> "LocalService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
