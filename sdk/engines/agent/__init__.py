"""The agent engine: registration with the master, executors and their tasks, and the
status-update manager, as a sans-I/O state machine (`AgentEngine`, composed in `engine`
from one part per concern).

Where each rule lives:
- `registration`: (re)registering with the master, its pings, losing it;
- `tasks`: launches, the master's questions about missing tasks, kills, framework
  shutdowns;
- `executors`: executor (re)registration, exits, framework messages;
- `status`: how an agent journals, acknowledges and forwards an update (the per-row
  loops are in `_status`, compiled);
- `recovery`: rebuilding a restarted agent from its checkpoints;
- `checkpoints`: the checkpoint actions and the recovered state;
- `containers`: launching and killing containers, volumes, limits;
- `records`: the agent's records of its connection, executors and tasks.

The status-update manager keeps one stream per (framework, task) on the `_core` ack
tracker: only the head of a stream is forwarded to the master; the next update goes
when the head is acknowledged; duplicates are dropped; heads are retried with truncated
exponential backoff and resent at once when the agent (re)registers. An executor's
update is acknowledged to the executor as soon as it is queued here.

Processes are not started here: the engine emits `LaunchExecutor` / `KillContainer`
actions and learns about exits through `executor_exited` (with the reason: a container
killed for exceeding its limits fails its tasks with REASON_CONTAINER_LIMITATION_*).
What a container may use (`ContainerLimits`: its executor's resources plus those of its
live tasks, persistent volumes excluded, plus an allowance for the command executor as
in Mesos) travels with `LaunchExecutor` and, as tasks come and go, is read by the
daemon through `container_limits()`.

Checkpointing (frameworks with `checkpoint` set): the engine emits checkpoint actions
(`CheckpointAgent`, `CheckpointFramework`, `CheckpointExecutor`, `CheckpointTask`,
`JournalAppend`, `CheckpointExecutorExited`, `DiscardFramework`, `DiscardRun`) that the daemon performs
synchronously, in order, before the actions after them. The engine emits a task's
`JournalAppend` of an update before the `Send`s that forward it or ack it to the
executor, and the `JournalAppend` of an ack before it forwards the stream's next
update: an update the executor saw acked is on disk ("durably queued").

Recovery (`recover`): a restarted agent is rebuilt from the checkpoints (frameworks,
executors, tasks, and each task's update stream replayed from its journal: pending =
journalled updates not acked). Recovered executors that are still running are asked to
reregister (`AgentReconnect`); they answer `ReregisterExecutor` with their tasks and
unacknowledged updates (de-duplicated by uuid against the replayed streams). Those
that do not within `recovery_timeout` are killed and their live tasks failed
(REASON_EXECUTOR_REREGISTRATION_TIMEOUT); executors found dead fail theirs with
REASON_EXECUTOR_TERMINATED; with `RecoverMode.CLEANUP` live executors are killed and
their tasks failed with REASON_AGENT_RESTARTED. Only then does the agent reregister with
the master, carrying its tasks and their unacknowledged updates.
"""
from corral.engines.agent.checkpoints import (
    CHECKPOINT_ACTIONS,
    CheckpointAgent,
    CheckpointExecutor,
    CheckpointExecutorExited,
    CheckpointFramework,
    CheckpointTask,
    DiscardFramework,
    DiscardRun,
    JournalAppend,
    JournalKind,
    JournalRecord,
    RecoveredRun,
    RecoveredState,
    RecoveredTask,
)
from corral.engines.agent.containers import (
    ContainerLimits,
    KillContainer,
    LaunchExecutor,
    LinkVolumes,
    UpdateVolumes,
    authorize_sandbox,
    persistent_volumes,
    resource_limits,
)
from corral.engines.agent.engine import AgentConfig, AgentEngine
from corral.engines.agent.executors import executor_principal
from corral.engines.agent.records import AgentTimer, Connection, Executor, ExecutorPhase, Task, TaskTable
from corral.engines.agent.recovery import RecoverMode
from corral.engines.agent.registration import PINGS_BEFORE_MASTER_LOST

__all__ = [
    "CHECKPOINT_ACTIONS",
    "PINGS_BEFORE_MASTER_LOST",
    "AgentConfig",
    "AgentEngine",
    "AgentTimer",
    "CheckpointAgent",
    "CheckpointExecutor",
    "CheckpointExecutorExited",
    "CheckpointFramework",
    "CheckpointTask",
    "Connection",
    "ContainerLimits",
    "DiscardFramework",
    "DiscardRun",
    "Executor",
    "ExecutorPhase",
    "JournalAppend",
    "JournalKind",
    "JournalRecord",
    "KillContainer",
    "LaunchExecutor",
    "LinkVolumes",
    "RecoverMode",
    "RecoveredRun",
    "RecoveredState",
    "RecoveredTask",
    "Task",
    "TaskTable",
    "UpdateVolumes",
    "authorize_sandbox",
    "executor_principal",
    "persistent_volumes",
    "resource_limits",
]
