"""`LocalRing`: store nodes as real processes on loopback, for tests and benches.

Each node is `python -m corral.examples.cassandra node ...` on a free port with its own
data directory; `kill` sends SIGKILL, `restart` starts it again on the same port and
data, and `wait_normal` polls the ring until every running node is UN.
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
        """Until every running node sees every running node UN."""
        running = sorted(n.name for n in self.nodes if n.alive())

        def settled() -> bool:
            for node in self.nodes:
                if node.alive():
                    states = self.states(node.address)
                    if sorted(k for k, v in states.items() if v == "UN") != running:
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
