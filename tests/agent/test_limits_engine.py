"""The agent engine's side of container limits: what a container may use (launch and
current), and the reason an exit carries to the tasks it fails."""
from __future__ import annotations

import random

from corral.net import wire
from corral.engines.agent import AgentConfig, AgentEngine, ContainerLimits, KillContainer, LaunchExecutor
from corral.engines.base import Send
from corral.engines.status import row_of, update_of
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

MASTER, EXEC, FID, AID = "tcp://master", "tcp://executor", "fw1", "agent-1"
R = pb.TaskStatus


def registered_agent() -> AgentEngine:
    agent = AgentEngine(pb.AgentInfo(hostname="h1", resources=Resources.parse("cpus:8;mem:8192;disk:8192").to_protos()),
                        "tcp://agent1", AgentConfig(command_executor_mem=64.0, command_executor_cpus=0.1),
                        random.Random(3))
    agent.connect(MASTER, 0.0)
    agent.tick(agent.next_deadline() or 0.0)
    agent.handle(MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value=AID)), 1.0)
    agent.take_actions()
    return agent


def framework() -> pb.FrameworkInfo:
    info = pb.FrameworkInfo(user="u", name="fw")
    info.id.value = FID
    return info


def task(tid: str, res: str, executor: pb.ExecutorInfo | None = None) -> pb.TaskInfo:
    info = pb.TaskInfo(name=tid, resources=Resources.parse(res).to_protos())
    info.task_id.value = tid
    info.agent_id.value = AID
    if executor is None:
        info.command.value = "sleep 1"
    else:
        info.executor.CopyFrom(executor)
    return info


def run(agent: AgentEngine, info: pb.TaskInfo) -> list:
    agent.handle(MASTER, pb.RunTask(framework=framework(), task=info), 1.0)
    return agent.take_actions()


def volume_disk(mb: int) -> pb.Resource:
    (disk,) = Resources.parse(f"disk:{mb}").to_protos()
    disk.disk.persistence.id = "vol"
    disk.disk.volume.container_path = "data"
    return disk


def executor_update(tid: str, state: int, uuid: bytes) -> wire.ExecutorStatusUpdate:
    update = pb.StatusUpdate(timestamp=2.0, uuid=uuid)
    update.framework_id.value = FID
    update.executor_id.value = "echo"
    update.status.task_id.value = tid
    update.status.state = state
    update.status.uuid = uuid
    return wire.ExecutorStatusUpdate([row_of(update)])


def test_a_command_task_launches_with_its_resources_plus_the_executor_allowance() -> None:
    agent = registered_agent()
    (launch,) = [a for a in run(agent, task("t1", "cpus:1;mem:128;disk:10")) if isinstance(a, LaunchExecutor)]
    assert launch.limits == ContainerLimits(mem_mb=192, disk_mb=10, cpus=1.1)
    assert agent.container_limits() == {launch.container_id: launch.limits}


def test_limits_follow_the_live_tasks_of_an_executor_and_leave_persistent_volumes_out() -> None:
    agent = registered_agent()
    executor = pb.ExecutorInfo(resources=Resources.parse("cpus:0.5;mem:32").to_protos())
    executor.executor_id.value = "echo"
    executor.command.value = "echo-executor"
    first = task("t1", "cpus:1;mem:100;disk:20", executor)
    first.resources.append(volume_disk(500))
    (launch,) = [a for a in run(agent, first) if isinstance(a, LaunchExecutor)]
    assert launch.limits == ContainerLimits(mem_mb=132, disk_mb=20, cpus=1.5)  # no allowance: a custom executor
    cid = launch.container_id
    agent.handle(EXEC, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID),
                                           executor_id=pb.ExecutorID(value="echo"), transport=EXEC), 1.0)
    run(agent, task("t2", "cpus:2;mem:200", executor))  # a second task for the running executor
    assert agent.container_limits() == {cid: ContainerLimits(mem_mb=332, disk_mb=20, cpus=3.5)}
    agent.handle(EXEC, executor_update("t1", pb.TASK_FINISHED, b"u" * 16), 2.0)
    assert agent.container_limits() == {cid: ContainerLimits(mem_mb=232, disk_mb=0, cpus=2.5)}


def test_a_container_being_killed_or_gone_has_no_current_limits() -> None:
    agent = registered_agent()
    (launch,) = [a for a in run(agent, task("t1", "cpus:1;mem:128")) if isinstance(a, LaunchExecutor)]
    agent.handle(MASTER, pb.KillTask(framework_id=pb.FrameworkID(value=FID), task_id=pb.TaskID(value="t1")), 2.0)
    assert [a for a in agent.take_actions() if isinstance(a, KillContainer)]  # killed before it registered
    assert agent.container_limits() == {}
    agent.executor_exited(launch.container_id, -9, "killed", 3.0)
    assert agent.container_limits() == {}


def test_an_exit_over_a_limit_fails_the_live_tasks_with_the_limitation() -> None:
    agent = registered_agent()
    (launch,) = [a for a in run(agent, task("t1", "cpus:1;mem:64")) if isinstance(a, LaunchExecutor)]
    agent.executor_exited(launch.container_id, -9, "memory limit exceeded: 300.0 MB of its 128 MB", 3.0,
                          R.REASON_CONTAINER_LIMITATION_MEMORY)
    (update,) = [update_of(a.body.rows[0]) for a in agent.take_actions()
                 if isinstance(a, Send) and isinstance(a.body, wire.StatusUpdateMessage)]
    assert update.status.state == pb.TASK_FAILED and update.status.source == R.SOURCE_AGENT
    assert update.status.reason == R.REASON_CONTAINER_LIMITATION_MEMORY
    assert update.status.message == "memory limit exceeded: 300.0 MB of its 128 MB"


def test_an_exit_without_a_reason_is_executor_terminated() -> None:
    agent = registered_agent()
    (launch,) = [a for a in run(agent, task("t1", "cpus:1;mem:64")) if isinstance(a, LaunchExecutor)]
    agent.executor_exited(launch.container_id, 1, "executor exited with status 1", 3.0)
    (update,) = [update_of(a.body.rows[0]) for a in agent.take_actions()
                 if isinstance(a, Send) and isinstance(a.body, wire.StatusUpdateMessage)]
    assert update.status.reason == R.REASON_EXECUTOR_TERMINATED
