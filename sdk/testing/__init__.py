"""corral.testing: run frameworks against simulated clusters (see `corral.testing.sim`)
or against real daemons on this machine (`LocalCluster`, see `corral.testing.cluster`)."""
from corral.testing.cluster import ClusterError, LocalCluster, wait_for
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
    "ClusterError", "LocalCluster", "wait_for",
    "HEARTBEAT_TIMEOUT", "MASTER_ADDRESS", "RETRIED_TYPES", "CallbackErrors", "Crash", "Delivery", "FakeClock",
    "Fault", "FaultPlan", "FaultRule", "NetEvent", "Partition", "Process", "SimCheckpoints", "SimCluster",
    "SimCommandExecutor", "SimExecutorDriver", "SimNetwork", "SimSchedulerDriver", "agent_address",
    "scheduler_address",
]
