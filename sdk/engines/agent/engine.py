"""The agent engine: the class that holds the agent's state and composes its concerns
(see the package's docstring for which module owns which)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from corral.engines.agent.checkpoints import CHECKPOINT_ACTIONS
from corral.engines.agent.containers import ContainersMixin, KillContainer, LaunchExecutor, LinkVolumes, UpdateVolumes
from corral.engines.agent.executors import ExecutorsMixin
from corral.engines.agent.records import Connection, Executor, TaskTable, _REGISTERED
from corral.engines.agent.recovery import RecoveryMixin
from corral.engines.agent.registration import RegistrationMixin
from corral.engines.agent.status import StatusMixin
from corral.engines.agent.tasks import TasksMixin
from corral.engines.backoff import Backoff, Jitter
from corral.engines.base import Engine, MasterLost, Send, earliest
from corral.engines.status import ack_tracker
from corral.protos import corral_pb2 as pb


@dataclass
class AgentConfig:
    #: registration backoff: first try after random [0, b], then [0, b * 2^n], capped
    registration_backoff: float = 1.0
    registration_backoff_max: float = 60.0
    #: seconds without a ping from the master before the agent considers it lost (until
    #: the master announces its ping interval: then 5 intervals)
    ping_timeout: float = 75.0
    status_update_backoff: float = 10.0
    status_update_backoff_max: float = 600.0
    #: per task, the uuids of the last this many updates acknowledged, to drop an
    #: executor's retries of them (0 to 64). An executor driver sends a task's next
    #: update only once the last is acknowledged, over one ordered connection, so a
    #: retry repeats one of the last few; each uuid more is 16 bytes per task, and at 64
    #: the memories of 10 000 tasks no longer fit the cache (benches/README.md)
    acknowledged_uuids_per_task: int = 8
    executor_registration_timeout: float = 60.0
    #: grace period between SIGTERM and SIGKILL when the agent itself kills a container
    shutdown_grace_period: float = 3.0
    #: argv of the built-in command executor
    command_executor: tuple[str, ...] = ("python3", "-m", "corral.executors.command")
    #: after a restart, how long recovered executors get to reregister
    recovery_timeout: float = 2.0
    #: how long an executor of a checkpointing framework waits for a lost agent to come back
    executor_recovery_timeout: float = 900.0
    #: allowance added to a command executor's limits for the executor process itself
    #: (Mesos adds 0.1 cpus and 32 MB; the Python command executor alone is ~35 MB resident)
    command_executor_cpus: float = 0.1
    command_executor_mem: float = 64.0


#: (the engine keeps at most 29 attributes, `batch` and `principal` included: CPython 3.11
#: shares the keys of an instance's attributes, and reads them fastest, only up to that
#: many; tests/engines/test_engine_attributes.py)
class AgentEngine(RegistrationMixin, TasksMixin, ExecutorsMixin, RecoveryMixin, StatusMixin, ContainersMixin, Engine):
    ACTIONS = frozenset({Send, MasterLost, LaunchExecutor, KillContainer, LinkVolumes, UpdateVolumes,
                         *CHECKPOINT_ACTIONS})

    def __init__(self, info: pb.AgentInfo, transport: str, config: AgentConfig | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__()
        self.info = info
        self.transport = transport
        self.config = config or AgentConfig()
        self.rng = rng or random.Random()
        #: identifies this agent process's registrations (see RegisterAgent.session)
        self.session = self.rng.randbytes(8)
        self._suffix: tuple[str, bytes] = ("", b"")
        self.connection = Connection.DISCONNECTED
        self.master: str | None = None
        self.agent_id: str | None = info.id.value if info.HasField("id") else None
        self.frameworks: dict[str, pb.FrameworkInfo] = {}
        self.executors: dict[tuple[str, str], Executor] = {}
        self.containers: dict[str, tuple[str, str]] = {}
        self.tasks = TaskTable()
        #: checkpointed runs whose executor has ended -> (framework, executor, the tasks
        #: whose updates are not all acknowledged yet); see `_run_ended`
        self._ended_runs: dict[str, tuple[str, str, set[str]]] = {}
        #: launches from the master that reached us before our first AgentRegistered
        #: (that reply was lost or is late): run once it names us, dropped otherwise
        self._held_launches: list[pb.RunTask] = []
        self.updates = ack_tracker(Backoff(self.config.status_update_backoff, self.config.status_update_backoff_max),
                                   remember=self.config.acknowledged_uuids_per_task)
        self.updates.pause()
        #: registrations are retried with full jitter: agents that lost their master at
        #: once do not register again all at once (each new round: `_registration.policy`)
        self._registration = Backoff(self.config.registration_backoff, self.config.registration_backoff_max,
                                     jitter=Jitter.FULL, random=self.rng).retry()
        self.ping_timeout = self.config.ping_timeout
        self._container_ids = 0
        #: True from `recover` until recovered executors have reregistered or timed out
        self.recovering = False
        self._agent_checkpointed = False
        self.counters: dict[str, int] = {
            "status_updates_received": 0,
            "duplicate_status_updates": 0,
            "status_updates_forwarded": 0,
            "acks_received": 0,
            "stale_acks": 0,
            "forced_reregistrations": 0,
            "messages_from_unknown": 0,
            "tasks_launched": 0,
            "executors_recovered": 0,
            "executors_reregistered": 0,
            "forged_senders": 0,
        }

    def next_deadline(self) -> float | None:
        return earliest(super().next_deadline(), self.updates.next_deadline())

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.connection is _REGISTERED:
            self._forward_heads(self.updates.due(now))

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.agent_id,
            "hostname": self.info.hostname,
            "transport": self.transport,
            "master": self.master,
            "connection": self.connection.value,
            "recovering": self.recovering,
            "frameworks": [
                {"id": fid, "name": info.name, "checkpoint": info.checkpoint}
                for fid, info in self.frameworks.items()
            ],
            "executors": [
                {
                    "id": e.id,
                    "framework_id": e.framework_id,
                    "container_id": e.container_id,
                    "phase": e.phase.value,
                    "tasks": sorted(e.task_ids),
                }
                for e in self.executors.values()
            ],
            "tasks": [
                {
                    "id": tid,
                    "framework_id": fid,
                    "executor_id": t.executor_id,
                    "state": pb.TaskState.Name(t.state),
                }
                for (fid, tid), t in self.tasks.items()
            ],
            "pending_status_updates": len(self.updates),
            "counters": dict(self.counters),
        }
