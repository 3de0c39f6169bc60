"""corral.testing: run frameworks against simulated clusters (see `corral.testing.sim`)
or against real daemons on this machine (`LocalCluster`, see `corral.testing.cluster`)."""
from corral.testing.cluster import ClusterError, LocalCluster, wait_for
from corral.testing.sim.checkpoints import SimCheckpoints
from corral.testing.sim.cluster import HEARTBEAT_TIMEOUT, FakeClock, SimCluster
from corral.testing.sim.drivers import CallbackErrors, SimCommandExecutor, SimExecutorDriver, SimSchedulerDriver
from corral.testing.sim.faults import (
    MASTER_ADDRESS, RETRIED_TYPES, ZOOKEEPER_ADDRESS, Crash, Fault, FaultPlan, FaultRule, Partition, Process,
    agent_address, is_master_address, master_address, scheduler_address,
)
from corral.testing.sim.network import Delivery, NetEvent, SimNetwork

__all__ = [
    "ClusterError", "LocalCluster", "wait_for",
    "HEARTBEAT_TIMEOUT", "MASTER_ADDRESS", "RETRIED_TYPES", "CallbackErrors", "Crash", "Delivery", "FakeClock",
    "Fault", "FaultPlan", "FaultRule", "NetEvent", "Partition", "Process", "SimCheckpoints", "SimCluster",
    "SimCommandExecutor", "SimExecutorDriver", "SimNetwork", "SimSchedulerDriver", "ZOOKEEPER_ADDRESS",
    "agent_address", "is_master_address", "master_address", "scheduler_address",
]
