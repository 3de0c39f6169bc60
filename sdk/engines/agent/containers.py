"""What the agent asks of its containers: launching an executor (`LaunchExecutor`, with
what it may use), killing one, persistent volumes, and each running container's limits
(its executor's resources plus those of its live tasks, plus an allowance for the
command executor, as in Mesos)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from corral.engines.agent.records import Executor, ExecutorPhase
from corral.engines.authorization import Authorizer
from corral.protos import corral_pb2 as pb
from corral.security.acls import Action


@dataclass(frozen=True, slots=True)
class ContainerLimits:
    """What a container may use: MB of memory, MB of sandbox disk, cpus (0: none given)."""

    mem_mb: float = 0.0
    disk_mb: float = 0.0
    cpus: float = 0.0


def resource_limits(resources: Any) -> ContainerLimits:
    """The mem, disk and cpus of `resources`; persistent volumes are not sandbox disk."""
    totals = {"mem": 0.0, "disk": 0.0, "cpus": 0.0}
    for r in resources:
        if r.name in totals and not (r.name == "disk" and r.HasField("disk") and r.disk.HasField("persistence")):
            totals[r.name] += r.scalar.value
    return ContainerLimits(totals["mem"], totals["disk"], totals["cpus"])


@dataclass(slots=True)
class LaunchExecutor:
    """Start an executor process for `executor` in a fresh sandbox."""

    container_id: str
    framework_id: str
    executor: pb.ExecutorInfo
    environment: dict[str, str]
    #: the framework checkpoints: record the process id for recovery
    checkpoint: bool = False
    #: what the container may use at first (with the task it is launched for)
    limits: ContainerLimits = ContainerLimits()
    #: the user it runs as, when the agent switches users: its executor's command user,
    #: else its framework's ("": the agent's own)
    user: str = ""
    #: corral's own command executor: it stays the agent's user and runs its task's
    #: command as `user` (so a corral installed where only the agent's user can read
    #: still serves every user's tasks, as Mesos' libexec executor does)
    command_executor: bool = False


@dataclass(slots=True)
class KillContainer:
    """SIGTERM the container's process group, SIGKILL after `grace` seconds."""

    container_id: str
    grace: float


@dataclass(slots=True)
class UpdateVolumes:
    """Create the directories of new persistent volumes and delete destroyed ones; each
    volume is (role, persistence id)."""

    create: list[tuple[str, str]]
    destroy: list[tuple[str, str]]


@dataclass(slots=True)
class LinkVolumes:
    """Make persistent volumes visible in a container's sandbox: (role, persistence id,
    container path) each."""

    container_id: str
    volumes: list[tuple[str, str, str]]


def persistent_volumes(resources: Any) -> list[tuple[str, str, str]]:
    """(role, persistence id, container path) of every persistent volume in `resources`."""
    out = []
    for r in resources:
        if r.HasField("disk") and r.disk.HasField("persistence"):
            role = r.reservations[-1].role if r.reservations else r.role
            out.append((role, r.disk.persistence.id, r.disk.volume.container_path))
    return out


def authorize_sandbox(authorizer: Authorizer, frameworks: Mapping[str, pb.FrameworkInfo], framework_id: str | None,
                      principal: str | None) -> None:
    """access_sandboxes: Denied unless the ACLs let `principal` read the sandboxes of
    the framework's user (`frameworks`: the agent engine's; framework None: the
    sandboxes of every framework). (The daemon holds the agent's ACLs and their
    denials: the engine keeps no more attributes.)"""
    info = frameworks.get(framework_id) if framework_id is not None else None
    authorizer.check(Action.ACCESS_SANDBOXES, principal, info.user if info is not None else None)


class ContainersMixin:
    """The limits of the agent's containers (a part of `AgentEngine`)."""


    def container_limits(self) -> dict[str, ContainerLimits]:
        """What each running container may use now (not those being killed)."""
        return {
            e.container_id: self._limits(e) for e in self.executors.values()
            if e.phase is not ExecutorPhase.TERMINATING and e.container_id in self.containers
        }

    def _limits(self, executor: Executor, extra: list[pb.TaskInfo] | None = None) -> ContainerLimits:
        resources = list(executor.info.resources)
        for task in self._live_tasks(executor):
            resources.extend(task.info.resources)
        for info in extra or []:
            resources.extend(info.resources)
        limits = resource_limits(resources)
        if executor.command_executor:
            limits = ContainerLimits(limits.mem_mb + self.config.command_executor_mem, limits.disk_mb,
                                     limits.cpus + self.config.command_executor_cpus)
        return limits
