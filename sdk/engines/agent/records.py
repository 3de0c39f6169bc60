"""What the agent keeps: its connection to the master, its executors and their phases,
and its tasks (`AgentTask` records, made for the status path's loops: see `_status`),
held by framework (`TaskTable`)."""
from __future__ import annotations

import enum
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from corral.engines.agent._status import AgentTask
from corral.protos import corral_pb2 as pb


class AgentTimer(enum.Enum):
    """The agent engine's timers (`Engine.set_timer`), each handled where its concern is."""

    REGISTER = "register"  # the next (re)registration attempt (registration)
    PING_TIMEOUT = "ping_timeout"  # no ping from the master for this long: it is lost (registration)
    EXECUTOR_REGISTRATION = "executor_registration"  # a launched executor's time to register (executors; subject: its key)
    RECOVERY = "recovery"  # after a restart, recovered executors' time to reregister (recovery)


class Connection(enum.Enum):
    DISCONNECTED = "disconnected"
    REGISTERING = "registering"
    REGISTERED = "registered"


_REGISTERED = Connection.REGISTERED  # (an Enum member read from its class costs a Python call)


class ExecutorPhase(enum.Enum):
    LAUNCHING = "launching"
    #: recovered from checkpoints, asked to reregister, not back yet
    RECOVERING = "recovering"
    REGISTERED = "registered"
    TERMINATING = "terminating"


@dataclass(slots=True)
class Executor:
    info: pb.ExecutorInfo
    framework_id: str
    container_id: str
    command_executor: bool
    phase: ExecutorPhase = ExecutorPhase.LAUNCHING
    transport: str = ""
    queued: list[pb.TaskInfo] = field(default_factory=list)
    task_ids: set[str] = field(default_factory=set)
    #: on authenticated links, the principal it registered as (its own key's): the
    #: only one that speaks for it
    principal: str | None = None

    @property
    def id(self) -> str:
        return self.info.executor_id.value


#: what the agent keeps of a task (a C type in the compiled build: the status path's
#: loops read and write its fields as struct fields)
Task = AgentTask


class TaskTable(MutableMapping[tuple[str, str], Task]):
    """The agent's tasks by (framework id, task id), held as each framework's tasks by
    task id (`by_framework`, what the status path's loops take): a message's rows are
    one framework's, found once, then each task by its id, a str key that hits by
    identity (the decoders hand out one str per task id), instead of a (framework id,
    task id) tuple made, hashed and compared with the stored one for every row."""

    __slots__ = ("by_framework", "_count")

    def __init__(self) -> None:
        self.by_framework: dict[str, dict[str, Task]] = {}
        self._count = 0

    def __getitem__(self, key: tuple[str, str]) -> Task:
        task = self.get(key)
        if task is None:
            raise KeyError(key)
        return task

    def get(self, key: tuple[str, str], default: Any = None) -> Any:  # (the Mapping one goes through __getitem__)
        tasks = self.by_framework.get(key[0])
        return default if tasks is None else tasks.get(key[1], default)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        tasks = self.by_framework.get(key[0])
        return tasks is not None and key[1] in tasks

    def __setitem__(self, key: tuple[str, str], task: Task) -> None:
        tasks = self.by_framework.setdefault(key[0], {})
        if key[1] not in tasks:
            self._count += 1
        tasks[key[1]] = task

    def __delitem__(self, key: tuple[str, str]) -> None:
        tasks = self.by_framework.get(key[0])
        if tasks is None or key[1] not in tasks:
            raise KeyError(key)
        del tasks[key[1]]
        self._count -= 1
        if not tasks:
            del self.by_framework[key[0]]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for fid, tasks in self.by_framework.items():
            for tid in tasks:
                yield (fid, tid)

    def __len__(self) -> int:
        return self._count
