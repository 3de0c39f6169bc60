"""corral: a Mesos-style cluster manager and framework SDK.

Framework authors subclass `Scheduler` (and `Executor` for custom executors) and run
them with `SchedulerDriver` / `ExecutorDriver`. The protobuf messages a framework needs
and small builders for tasks and resources are importable from here.
"""
__version__ = "0.1.0"

from corral import _core  # noqa: F401  (first: selects the compiled modules or their twins)
from corral.runtime.driver import DriverStatus
from corral.executor import Executor, ExecutorDriver
from corral.protos.corral_pb2 import (
    AgentID,
    AgentInfo,
    Attribute,
    CommandInfo,
    ExecutorID,
    ExecutorInfo,
    Filters,
    FrameworkID,
    FrameworkInfo,
    HealthCheck,
    KillPolicy,
    MasterInfo,
    Offer,
    OfferID,
    Resource,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    Value,
)
from corral.protos.corral_pb2 import (
    TASK_DROPPED,
    TASK_ERROR,
    TASK_FAILED,
    TASK_FINISHED,
    TASK_GONE,
    TASK_GONE_BY_OPERATOR,
    TASK_KILLED,
    TASK_KILLING,
    TASK_LOST,
    TASK_RUNNING,
    TASK_STAGING,
    TASK_STARTING,
    TASK_UNKNOWN,
    TASK_UNREACHABLE,
)
from corral.engines.agent import AgentConfig
from corral.engines.common import TERMINAL_STATES, is_terminal, reason_name, source_name, state_name
from corral.engines.executor import InvalidStatusUpdate
from corral.engines.scheduler import SchedulerConfig
from corral.engines.scheduler.reconcile import Progress, RoundKind
from corral.resources import Resources, ResourceError
from corral.scheduler import FrameworkIdStore, Scheduler, SchedulerDriver
from corral.security.links import Credential
from corral.tasks import (
    command_task,
    executor_info,
    executor_task,
    new_task_id,
    pack,
    task_status,
    unpack,
    uri,
)

__all__ = [
    "__version__",
    "AgentConfig", "AgentID", "AgentInfo", "Attribute", "CommandInfo", "Credential", "DriverStatus", "Executor", "ExecutorDriver",
    "ExecutorID", "ExecutorInfo", "Filters", "FrameworkID", "FrameworkIdStore", "FrameworkInfo", "HealthCheck", "InvalidStatusUpdate", "KillPolicy",
    "MasterInfo", "Offer", "OfferID", "Progress", "Resource", "ResourceError", "Resources", "RoundKind", "Scheduler",
    "SchedulerConfig", "SchedulerDriver",
    "TaskID", "TaskInfo", "TaskState", "TaskStatus", "Value",
    "TASK_DROPPED", "TASK_ERROR", "TASK_FAILED", "TASK_FINISHED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
    "TASK_KILLED", "TASK_KILLING", "TASK_LOST", "TASK_RUNNING", "TASK_STAGING", "TASK_STARTING", "TASK_UNKNOWN",
    "TASK_UNREACHABLE", "TERMINAL_STATES",
    "command_task", "executor_info", "executor_task", "is_terminal", "new_task_id", "pack", "reason_name",
    "source_name", "state_name", "task_status", "unpack", "uri",
]
