"""corral.testing: run frameworks against simulated clusters (see `corral.testing.sim`)."""
from corral.testing.sim import (
    RETRIED_TYPES,
    CallbackErrors,
    Delivery,
    FakeClock,
    Fault,
    FaultPlan,
    FaultRule,
    NetEvent,
    Partition,
    SimCluster,
    SimCommandExecutor,
    SimExecutorDriver,
    SimNetwork,
    SimSchedulerDriver,
)

__all__ = [
    "RETRIED_TYPES", "CallbackErrors", "Delivery", "FakeClock", "Fault", "FaultPlan", "FaultRule", "NetEvent",
    "Partition", "SimCluster", "SimCommandExecutor", "SimExecutorDriver", "SimNetwork", "SimSchedulerDriver",
]
