"""The agent daemon: runs the agent engine on a transport, performs its actions with
the containerizer, follows the master through the detector, and serves HTTP on the
agent's one address (`/health`, `/state`, `/info`, `/flags`, `/metrics/snapshot`)."""
from __future__ import annotations

import logging
import socket
from http import HTTPStatus
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corral import __version__
from corral.agent.containerizer import Containerizer, LaunchError
from corral.agent.files import MAX_READ, FileAccessError, SandboxFiles, int_param
from corral.detector import MasterDetector
from corral.engines.agent import AgentConfig, AgentEngine, KillContainer, LaunchExecutor
from corral.engines.base import MasterLost
from corral.http import HttpServer, Reply
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.runtime import Runtime

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


class AgentDaemon:
    def __init__(self, flags: AgentFlags, config: AgentConfig | None = None) -> None:
        self.flags = flags
        self.config = config or AgentConfig(command_executor=(sys.executable, "-m", "corral.executors.command"))
        flags.work_dir.mkdir(parents=True, exist_ok=True)
        info = pb.AgentInfo(hostname=flags.hostname, resources=flags.resources.to_protos(),
                            attributes=flags.attributes)
        self.runtime = Runtime(lambda address: AgentEngine(info, address, self.config), host=flags.host,
                               port=flags.transport_port)
        self.engine: AgentEngine = self.runtime.engine  # type: ignore[assignment]
        self.containerizer = Containerizer(flags.work_dir, self._container_exited)
        self.runtime.add_performer(LaunchExecutor, self._launch)
        self.runtime.add_performer(KillContainer, lambda a: self.containerizer.kill(a.container_id, a.grace))
        self.runtime.add_performer(MasterLost, lambda _a: self.detector.detect())
        self.detector = MasterDetector(flags.master, self._master_found)
        self.http = HttpServer(flags.host, flags.port, {
            "/health": lambda q, b: Reply(body=b"", content_type="text/plain"),
            "/state": lambda q, b: Reply.json(self.state()),
            "/info": lambda q, b: Reply.json({"id": self.engine.agent_id, "transport": self.runtime.address,
                                              "version": __version__}),
            "/flags": lambda q, b: Reply.json(self.flags_view()),
            "/metrics/snapshot": lambda q, b: Reply.json(self.metrics()),
            "/files/browse": self._browse,
            "/files/read": self._read,
        })
        self.files = SandboxFiles(self.containerizer.sandboxes_root)
        self.address = self.http.address

    # -- actions ------------------------------------------------------------------
    def _launch(self, action: LaunchExecutor) -> None:
        try:
            self.containerizer.launch(action.container_id, action.framework_id, action.executor, action.environment)
        except LaunchError as exc:
            log.error("%s", exc)
            self.engine.executor_launch_failed(action.container_id, str(exc), self.runtime.clock())

    def _container_exited(self, container_id: str, status: int, message: str) -> None:
        self.runtime.call_soon(lambda: self.engine.executor_exited(container_id, status, message, self.runtime.clock()))

    def _master_found(self, transport: str) -> None:
        self.runtime.call_soon(lambda: self.engine.connect(transport, self.runtime.clock()))

    # -- sandbox files ------------------------------------------------------------------
    def _browse(self, query: dict[str, str], body: bytes) -> Reply:
        try:
            return Reply.json(self.files.browse(query.get("path", "")))
        except FileAccessError as exc:
            return Reply.error(HTTPStatus(exc.status), str(exc))

    def _read(self, query: dict[str, str], body: bytes) -> Reply:
        try:
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

    def flags_view(self) -> dict[str, Any]:
        flags = asdict(self.flags)
        flags["work_dir"] = str(self.flags.work_dir)
        flags["resources"] = str(self.flags.resources)
        flags["attributes"] = [a.name for a in self.flags.attributes]
        return flags

    def metrics(self) -> dict[str, Any]:
        with self.runtime.lock:
            counters = {f"agent/{k}": v for k, v in self.engine.counters.items()}
            counters["agent/registered"] = int(self.engine.connection.value == "registered")
            counters["agent/executors"] = len(self.engine.executors)
            counters["agent/tasks"] = len(self.engine.tasks)
            counters["agent/pending_status_updates"] = len(self.engine.updates)
        counters.update({f"transport/{k}": v for k, v in self.runtime.metrics().items()})
        return counters

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self.http.start()
        self.runtime.start(name="agent-io")
        self.detector.detect()
        log.info("agent listening on %s (transport %s)", self.address, self.runtime.address)

    def stop(self, grace: float = 3.0) -> None:
        self.detector.stop()
        self.containerizer.kill_all(grace)
        self.containerizer.wait_all(grace + 2.0)
        self.runtime.stop()
        self.runtime.join(5.0)
        self.http.close()
