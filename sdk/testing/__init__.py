"""corral.testing: run frameworks against simulated clusters (see `corral.testing.sim`)."""
from corral.testing.sim import (
    HEARTBEAT_TIMEOUT,
    MASTER_ADDRESS,
    RETRIED_TYPES,
    CallbackErrors,
    Crash,
    Delivery,
    FakeClock,
    Fault,
    FaultPlan,
    FaultRule,
    NetEvent,
    Partition,
    Process,
    SimCheckpoints,
    SimCluster,
    SimCommandExecutor,
    SimExecutorDriver,
    SimNetwork,
    SimSchedulerDriver,
    agent_address,
    scheduler_address,
)

__all__ = [
    "HEARTBEAT_TIMEOUT", "MASTER_ADDRESS", "RETRIED_TYPES", "CallbackErrors", "Crash", "Delivery", "FakeClock",
    "Fault", "FaultPlan", "FaultRule", "NetEvent", "Partition", "Process", "SimCheckpoints", "SimCluster",
    "SimCommandExecutor", "SimExecutorDriver", "SimNetwork", "SimSchedulerDriver", "agent_address",
    "scheduler_address",
]
