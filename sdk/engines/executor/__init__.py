"""The executor-driver engine: registration with the agent, task callbacks, and reliable
status updates (retried to the agent until acknowledged), sans I/O (`ExecutorEngine`, in
`engine`)."""
from corral.engines.executor.engine import (
    AgentConnection,
    AllAcknowledged,
    ExecutorEngine,
    ExecutorEvent,
    ExecutorTimer,
    InvalidStatusUpdate,
    Stop,
    serialise_status,
)

__all__ = ["AgentConnection", "AllAcknowledged", "ExecutorEngine", "ExecutorEvent", "ExecutorTimer", "InvalidStatusUpdate",
           "Stop", "serialise_status"]
