"""The agent engine on authenticated links: the master's messages must come over the
master's connection, and each executor speaks only for itself (its own key's principal,
`executor_principal`), whatever address a message's header names."""
from __future__ import annotations

import random
from typing import Any

from corral.engines.agent import AgentConfig, AgentEngine, Connection, LaunchExecutor, executor_principal
from corral.net import wire
from corral.protos import corral_pb2 as pb
from corral.security.links import MASTER_PRINCIPAL

from engine_helpers import MASTER, advance, bodies, command_task, feed, framework_info, others, resources, sent
from engine_helpers import wire_updates

FID, AID = "fw1", "agent-1"
E1, E2 = "tcp://executor1", "tcp://executor2"


def as_(agent: AgentEngine, principal: str | None, sender: str, body: Any, now: float = 1.0) -> None:
    agent.principal = principal
    feed(agent, sender, body, now)


def secured_agent_with_two_executors() -> AgentEngine:
    agent = AgentEngine(pb.AgentInfo(hostname="h1", resources=resources("cpus:4;mem:4096")), "tcp://agent1",
                        AgentConfig(), random.Random(7))
    agent.connect(MASTER, 0.0)
    advance(agent, 1.0)
    as_(agent, MASTER_PRINCIPAL, MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value=AID), master_info=pb.MasterInfo(
        id="m1", hostname="m", port=5050, transport=MASTER)))
    assert agent.connection is Connection.REGISTERED
    for tid, address in (("t1", E1), ("t2", E2)):
        as_(agent, MASTER_PRINCIPAL, MASTER, pb.RunTask(framework=framework_info(framework_id=FID),
                                                        task=command_task(tid, AID)))
        assert others(agent.take_actions(), LaunchExecutor)
        as_(agent, executor_principal(FID, tid), address, pb.RegisterExecutor(
            framework_id=pb.FrameworkID(value=FID), executor_id=pb.ExecutorID(value=tid), transport=address))
        assert bodies(agent, pb.RunExecutorTask, to=address)
    return agent


def update_of(tid: str, state: int, uuid: bytes) -> wire.ExecutorStatusUpdate:
    update = pb.StatusUpdate(timestamp=2.0, uuid=uuid)
    update.framework_id.value = FID
    update.executor_id.value = tid
    update.status.task_id.value = tid
    update.status.state = state
    update.status.uuid = uuid
    update.status.source = pb.TaskStatus.SOURCE_EXECUTOR
    return wire_updates(wire.ExecutorStatusUpdate, update)


def test_an_executor_cannot_speak_for_another_nor_for_the_master():
    agent = secured_agent_with_two_executors()
    sent(agent)
    t1 = executor_principal(FID, "t1")
    # executor t1 names t2's address: its update of t2 is dropped, nothing is acked or forwarded
    as_(agent, t1, E2, update_of("t2", pb.TASK_FAILED, b"x" * 16))
    # ... and the master's: a launch or a kill from it is dropped
    as_(agent, t1, MASTER, pb.RunTask(framework=framework_info(framework_id=FID), task=command_task("t3", AID)))
    as_(agent, t1, MASTER, pb.KillTask(framework_id=pb.FrameworkID(value=FID), task_id=pb.TaskID(value="t2")))
    # ... and it cannot register as t2 either
    as_(agent, t1, E1, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID), executor_id=pb.ExecutorID(value="t2"),
                                           transport=E1))
    assert agent.take_actions() == []
    assert agent.counters["forged_senders"] == 4
    assert agent.tasks.get((FID, "t2")).state == pb.TASK_STAGING and (FID, "t3") not in agent.tasks
    # from its own connection, t2's update is taken
    as_(agent, executor_principal(FID, "t2"), E2, update_of("t2", pb.TASK_RUNNING, b"y" * 16))
    assert bodies(agent, wire.ExecutorStatusUpdateAck, to=E2)
    assert agent.tasks.get((FID, "t2")).state == pb.TASK_RUNNING


def test_without_authentication_addresses_decide_as_before():
    agent = AgentEngine(pb.AgentInfo(hostname="h1", resources=resources("cpus:4;mem:4096")), "tcp://agent1",
                        AgentConfig(), random.Random(7))
    agent.connect(MASTER, 0.0)
    advance(agent, 1.0)
    feed(agent, MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value=AID), master_info=pb.MasterInfo(
        id="m1", hostname="m", port=5050, transport=MASTER)), 1.0)
    feed(agent, MASTER, pb.RunTask(framework=framework_info(framework_id=FID), task=command_task("t1", AID)), 1.0)
    feed(agent, E1, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID), executor_id=pb.ExecutorID(value="t1"),
                                        transport=E1), 1.0)
    assert bodies(agent, pb.RunExecutorTask, to=E1)
    feed(agent, E1, update_of("t1", pb.TASK_RUNNING, b"z" * 16), 2.0)
    assert bodies(agent, wire.ExecutorStatusUpdateAck, to=E1)
    assert agent.counters["forged_senders"] == 0 and [e.principal for e in agent.executors.values()] == [None]
