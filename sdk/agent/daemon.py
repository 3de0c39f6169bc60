"""The agent daemon: runs the agent engine on a transport, performs its actions with
the containerizer and the checkpointer, follows the master through the detector, and
serves HTTP on the agent's one address (`/health`, `/state`, `/info`, `/flags`,
`/metrics/snapshot`).

Checkpoint actions are performed synchronously on the I/O thread, in the order the
engine emitted them, so each is on disk before the sends that follow it. A checkpoint
that cannot be written ends the process (as a failed CHECK does in Mesos): carrying on
would ack updates that are not durable.

On start, before it looks for the master, the daemon recovers: same boot id -> the
checkpoints are read (a corrupt file stops the start with an error naming it), the
executors still running are adopted by the containerizer and the engine is rebuilt
(`AgentEngine.recover`); a new boot id (the machine rebooted) -> the checkpoints are
discarded and the agent starts afresh."""
from __future__ import annotations

import logging
import os
import socket
from http import HTTPStatus
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from corral import __version__
from corral.agent.checkpoint import BOOT_ID_PATH, Checkpointer, ProcessStamp, read_boot_id
from corral.agent.containerizer import Containerizer, LaunchError
from corral.agent.volumes import VolumeError, Volumes
from corral.agent.files import MAX_READ, FileAccessError, SandboxFiles, int_param
from corral.detector import MasterDetector
from corral.engines.agent import (
    CHECKPOINT_ACTIONS,
    LinkVolumes,
    UpdateVolumes,
    AgentConfig,
    AgentEngine,
    CheckpointAgent,
    CheckpointExecutor,
    CheckpointExecutorExited,
    CheckpointFramework,
    CheckpointTask,
    DiscardFramework,
    JournalAppend,
    KillContainer,
    LaunchExecutor,
    RecoverMode,
)
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
    recover: RecoverMode = RecoverMode.RECONNECT
    #: after a restart, how long recovered executors get to reregister
    recovery_timeout: float = 2.0
    #: where the machine's boot id is read (tests point it at a file of their own)
    boot_id_file: Path = BOOT_ID_PATH


class AgentDaemon:
    def __init__(self, flags: AgentFlags, config: AgentConfig | None = None) -> None:
        self.flags = flags
        self.config = replace(config or AgentConfig(command_executor=(sys.executable, "-m", "corral.executors.command")),
                              recovery_timeout=flags.recovery_timeout)
        flags.work_dir.mkdir(parents=True, exist_ok=True)
        info = pb.AgentInfo(hostname=flags.hostname, resources=flags.resources.to_protos(),
                            attributes=flags.attributes)
        self.runtime = Runtime(lambda address: AgentEngine(info, address, self.config), host=flags.host,
                               port=flags.transport_port)
        self.engine: AgentEngine = self.runtime.engine  # type: ignore[assignment]
        self.containerizer = Containerizer(flags.work_dir, self._container_exited)
        self.checkpointer = Checkpointer(flags.work_dir)
        for action_type in CHECKPOINT_ACTIONS:
            self.runtime.add_performer(action_type, self._checkpoint)
        self.runtime.add_performer(LaunchExecutor, self._launch)
        self.runtime.add_performer(KillContainer, lambda a: self.containerizer.kill(a.container_id, a.grace))
        self.runtime.add_performer(MasterLost, lambda _a: self.detector.detect())
        self.volumes = Volumes(flags.work_dir)
        self.runtime.add_performer(UpdateVolumes, self._update_volumes)
        self.runtime.add_performer(LinkVolumes, self._link_volumes)
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
            return
        stamp = self.containerizer.stamp(action.container_id)
        if action.checkpoint and stamp is not None:
            self._durably(self.checkpointer.write_pid, action.framework_id, action.executor.executor_id.value,
                          action.container_id, stamp)

    def _checkpoint(self, action: Any) -> None:
        c = self.checkpointer
        if isinstance(action, JournalAppend):
            self._durably(c.append, action.framework_id, action.executor_id, action.container_id, action.task_id,
                          action.record)
        elif isinstance(action, CheckpointTask):
            self._durably(c.write_task, action.framework_id, action.executor_id, action.container_id, action.info)
        elif isinstance(action, CheckpointExecutor):
            self._durably(c.write_executor, action.framework_id, action.info, action.container_id,
                          action.command_executor, action.transport)
        elif isinstance(action, CheckpointExecutorExited):
            self._durably(c.mark_exited, action.framework_id, action.executor_id, action.container_id)
        elif isinstance(action, CheckpointFramework):
            self._durably(c.write_framework, action.info)
        elif isinstance(action, DiscardFramework):
            self._durably(c.discard_framework, action.framework_id)
        elif isinstance(action, CheckpointAgent):
            self._durably(c.write_agent, action.info)
        else:
            raise TypeError(f"not a checkpoint action: {action!r}")

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
        flags["boot_id_file"] = str(self.flags.boot_id_file)
        flags["recover"] = self.flags.recover.value
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
                    and self.containerizer.adopt(run.container_id, ProcessStamp(run.pid, run.start_time))
                }
                with self.runtime.lock:
                    self.engine.recover(state, live, self.flags.recover, self.runtime.clock())
                log.info("recovered agent %s: %d framework(s), %d task(s), %d live executor(s) (%s)",
                         self.engine.agent_id, len(state.frameworks), len(self.engine.tasks), len(live),
                         self.flags.recover.value)
        self.checkpointer.write_boot_id(boot_id)

    def start(self) -> None:
        self.recover()
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
