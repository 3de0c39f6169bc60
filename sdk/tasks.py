"""Helpers that build tasks, executors and statuses without hand-assembling protobufs,
and msgpack helpers for the schema-free payloads a framework ships to its executors."""
from __future__ import annotations

import uuid
from typing import Any, Iterable, Mapping

import msgpack

from corral.protos import corral_pb2 as pb
from corral.resources import Resources

ResourcesLike = Resources | str | Iterable[pb.Resource]


def as_resources(resources: ResourcesLike) -> Resources:
    if isinstance(resources, Resources):
        return resources
    if isinstance(resources, str):
        return Resources.parse(resources)
    return Resources.from_protos(resources)


def new_task_id(prefix: str = "task") -> pb.TaskID:
    return pb.TaskID(value=f"{prefix}-{uuid.uuid4().hex[:12]}")


def _agent_id(agent_id: pb.AgentID | str) -> pb.AgentID:
    return agent_id if isinstance(agent_id, pb.AgentID) else pb.AgentID(value=agent_id)


URILike = pb.CommandInfo.URI | str


def uri(value: str, *, executable: bool = False, extract: bool = True, cache: bool = False,
        output_file: str = "") -> pb.CommandInfo.URI:
    """Something the agent fetches into the sandbox before the command runs (see
    `corral.agent.fetcher`): a local path, file://, http:// or https:// URL."""
    return pb.CommandInfo.URI(value=value, executable=executable, extract=extract, cache=cache,
                              output_file=output_file)


def command_info(command: str | Iterable[str], environment: Mapping[str, str] | None = None,
                 uris: Iterable[URILike] = ()) -> pb.CommandInfo:
    """A shell string (run by /bin/sh -c) or an argv list; `uris` (strings or `uri(...)`)
    are fetched into the sandbox first."""
    if isinstance(command, str):
        info = pb.CommandInfo(shell=True, value=command)
    else:
        argv = list(command)
        info = pb.CommandInfo(shell=False, value=argv[0], arguments=argv)
    for name, value in (environment or {}).items():
        info.environment.variables.add(name=name, value=value)
    info.uris.extend(u if isinstance(u, pb.CommandInfo.URI) else uri(u) for u in uris)
    return info


def kill_policy(grace_seconds: float) -> pb.KillPolicy:
    return pb.KillPolicy(grace_period=pb.DurationInfo(nanoseconds=int(grace_seconds * 1e9)))


def command_task(
    name: str,
    command: str | Iterable[str],
    agent_id: pb.AgentID | str,
    resources: ResourcesLike,
    *,
    task_id: pb.TaskID | str | None = None,
    environment: Mapping[str, str] | None = None,
    grace_seconds: float | None = None,
    health_check: pb.HealthCheck | None = None,
    data: bytes | None = None,
    uris: Iterable[URILike] = (),
) -> pb.TaskInfo:
    """A task run by the built-in command executor."""
    task = pb.TaskInfo(name=name, agent_id=_agent_id(agent_id), resources=as_resources(resources).to_protos(),
                       command=command_info(command, environment, uris))
    _finish_task(task, task_id, grace_seconds, health_check, data)
    return task


def executor_info(
    executor_id: str,
    command: str | Iterable[str],
    *,
    resources: ResourcesLike = "",
    environment: Mapping[str, str] | None = None,
    name: str = "",
    uris: Iterable[URILike] = (),
) -> pb.ExecutorInfo:
    """A custom executor: `command` starts a program that runs an `ExecutorDriver`."""
    info = pb.ExecutorInfo(executor_id=pb.ExecutorID(value=executor_id),
                           command=command_info(command, environment, uris), name=name or executor_id)
    if resources:
        info.resources.extend(as_resources(resources).to_protos())
    return info


def executor_task(
    name: str,
    executor: pb.ExecutorInfo,
    agent_id: pb.AgentID | str,
    resources: ResourcesLike,
    *,
    task_id: pb.TaskID | str | None = None,
    grace_seconds: float | None = None,
    health_check: pb.HealthCheck | None = None,
    data: bytes | None = None,
) -> pb.TaskInfo:
    """A task run by a custom executor."""
    task = pb.TaskInfo(name=name, agent_id=_agent_id(agent_id), resources=as_resources(resources).to_protos(),
                       executor=executor)
    _finish_task(task, task_id, grace_seconds, health_check, data)
    return task


def _finish_task(task: pb.TaskInfo, task_id: pb.TaskID | str | None, grace_seconds: float | None,
                 health_check: pb.HealthCheck | None, data: bytes | None) -> None:
    if task_id is None:
        task.task_id.CopyFrom(new_task_id(task.name or "task"))
    elif isinstance(task_id, str):
        task.task_id.value = task_id
    else:
        task.task_id.CopyFrom(task_id)
    if grace_seconds is not None:
        task.kill_policy.CopyFrom(kill_policy(grace_seconds))
    if health_check is not None:
        task.health_check.CopyFrom(health_check)
    if data is not None:
        task.data = data


def task_status(task_id: pb.TaskID | str, state: int, message: str = "", data: bytes | None = None) -> pb.TaskStatus:
    """A status for an executor to send."""
    status = pb.TaskStatus(task_id=task_id if isinstance(task_id, pb.TaskID) else pb.TaskID(value=task_id),
                           state=state)
    if message:
        status.message = message
    if data is not None:
        status.data = data
    return status


def pack(value: Any) -> bytes:
    """Serialise task data or a framework message with msgpack."""
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)
