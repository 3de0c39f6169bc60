"""`ExecutorEnvironment`: what an executor process learns from the CORRAL_* variables its
agent sets, parsed once for the real `ExecutorDriver` and the simulator's executors."""
from __future__ import annotations

import random

import pytest

from corral.engines.agent import AgentConfig
from corral.executor import ExecutorEnvironment, ExecutorEnvironmentError
from corral.testing import SimCluster

from test_action_tables import OneLongTask


def test_identity_and_settings_are_read_and_defaulted() -> None:
    env = ExecutorEnvironment.parse({"CORRAL_AGENT_ENDPOINT": "tcp://10.0.0.7:5151", "CORRAL_FRAMEWORK_ID": "f",
                                     "CORRAL_EXECUTOR_ID": "e", "CORRAL_SANDBOX": "/sandbox",
                                     "CORRAL_CHECKPOINT": "1", "CORRAL_RECOVERY_TIMEOUT": "30"})
    assert (env.agent_endpoint, env.framework_id, env.executor_id, env.sandbox) == (
        "tcp://10.0.0.7:5151", "f", "e", "/sandbox")
    assert (env.status_update_backoff, env.checkpoint, env.recovery_timeout, env.host) == (10.0, True, 30.0, "10.0.0.7")
    engine = env.engine("tcp://10.0.0.7:6000", random.Random(1))
    assert (engine.agent, engine.transport, engine.framework_id, engine.executor_id) == (
        "tcp://10.0.0.7:5151", "tcp://10.0.0.7:6000", "f", "e")
    assert (engine.checkpoint, engine.recovery_timeout) == (True, 30.0)


def test_missing_identity_variables_are_named() -> None:
    with pytest.raises(ExecutorEnvironmentError, match="CORRAL_FRAMEWORK_ID, CORRAL_EXECUTOR_ID"):
        ExecutorEnvironment.parse({"CORRAL_AGENT_ENDPOINT": "tcp://127.0.0.1:1"})


def test_the_simulator_launches_executors_from_the_environment_its_agent_sets() -> None:
    cluster = SimCluster(agents=1, agent_config=AgentConfig(executor_recovery_timeout=42.0))
    cluster.add_scheduler(OneLongTask())
    assert cluster.run_until(lambda: cluster.live_executors(), 60)
    (driver,) = cluster.live_executors()
    assert (driver.engine.recovery_timeout, driver.engine.agent) == (42.0, "sim://agent-1")
