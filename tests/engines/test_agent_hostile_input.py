"""The agent engine fed hostile messages (see `hostile.py`) from its master, its executor
and strangers, between a task's launch and its status updates: no handler may raise, and
the agent must keep carrying updates: its state still renders, and an update from the
executor of a task it still runs reaches the master in order, once acknowledged in turn.
"""
from __future__ import annotations

import json
import os

import pytest

from corral.net import wire
from corral.engines.agent import Connection
from corral.protos import corral_pb2 as pb

from engine_helpers import MASTER, sent, updates_in
from hostile import SEEDS, bombard
from test_agent_engine import AID, EXEC, FID, executor_update, running_agent

STRANGER = "tcp://stranger"


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_messages_neither_raise_nor_stop_the_status_path(seed):
    agent = running_agent()
    now = bombard(agent, seed, [AID, FID, "t1", EXEC, MASTER], [MASTER, EXEC, STRANGER], 2.0)
    json.dumps(agent.snapshot(), default=str)  # the state endpoint still renders
    task = agent.tasks.get((FID, "t1"))
    if agent.connection is not Connection.REGISTERED or task is None or agent.executors.get((FID, "t1")) is None:
        return  # the master (really) told it to re-register, or the task or its executor went
    # what is pending first, then ours: acknowledge heads until our update has been forwarded
    uuid = os.urandom(16)
    agent.handle(EXEC, wire.ExecutorStatusUpdate.FromString(executor_update(pb.TASK_RUNNING, uuid, now=now)
                                                               .SerializeToString()), now)
    for _ in range(200):
        heads = [u for to, m in sent(agent, wire.StatusUpdateMessage) if to == MASTER for u in updates_in(m)]
        if any(u.uuid == uuid for u in heads):
            return
        if not heads:
            agent.tick(now := now + 700.0)  # (retries of the pending head: at most 10 minutes apart)
            continue
        agent.handle(MASTER, wire.StatusUpdateAck(AID, [(FID, u.status.task_id.value, u.uuid) for u in heads]), now)
    raise AssertionError(f"seed {seed}: the executor's update never reached the master")


# ---------------------------------------------------------------- what the seeds found


@pytest.mark.parametrize("call", [pb.RegisterExecutor, pb.ReregisterExecutor])
def test_an_executor_registration_naming_another_transport_is_dropped(call):
    agent = running_agent()
    executor = agent.executors[(FID, "t1")]
    agent.handle(STRANGER, call(framework_id=pb.FrameworkID(value=FID), executor_id=pb.ExecutorID(value="t1"),
                                transport="tcp://elsewhere"), 2.0)
    assert not sent(agent) and executor.transport == EXEC
    assert agent.counters["messages_from_unknown"] == 1
    # the executor's own updates are still taken and acknowledged
    uuid = os.urandom(16)
    agent.handle(EXEC, executor_update(pb.TASK_RUNNING, uuid), 2.0)
    assert (EXEC, wire.ExecutorStatusUpdateAck) in [(to, type(body)) for to, body in sent(agent)]
