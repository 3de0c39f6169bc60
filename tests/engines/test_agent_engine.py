"""AgentEngine: registration backoff, the status-update manager (ordering, duplicates,
stale acks, retries, pause and resend), launch/kill races and executor failures."""
from __future__ import annotations

import random

import pytest

from corral._core.rows import STATUS
from corral.net import wire
from corral.engines.agent import AgentConfig, AgentEngine, Connection, KillContainer, LaunchExecutor
from corral.engines.agent import Task, TaskTable
from corral.engines.base import MasterLost
from corral.protos import corral_pb2 as pb

from engine_helpers import MASTER, advance, bodies, command_task, feed, framework_info, others, resources, sent
from engine_helpers import updates_in, wire_updates

EXEC = "tcp://executor"
FID, AID = "fw1", "agent-1"
R = pb.TaskStatus


def new_agent(**config) -> AgentEngine:
    info = pb.AgentInfo(hostname="h1", resources=resources("cpus:4;mem:4096"))
    return AgentEngine(info, "tcp://agent1", AgentConfig(**config), random.Random(7))


def registered_agent(**config) -> AgentEngine:
    agent = new_agent(**config)
    agent.connect(MASTER, 0.0)
    advance(agent, 1.0)
    assert bodies(agent, pb.RegisterAgent, to=MASTER)
    feed(agent, MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value=AID), master_info=pb.MasterInfo(
        id="m1", hostname="m", port=5050, transport=MASTER)), 1.0)
    assert agent.connection is Connection.REGISTERED
    return agent


def run_task(agent: AgentEngine, tid: str = "t1", now: float = 1.0) -> LaunchExecutor | None:
    info = framework_info(framework_id=FID)
    feed(agent, MASTER, pb.RunTask(framework=info, task=command_task(tid, AID)), now)
    launches = others(agent.take_actions(), LaunchExecutor)
    return launches[0] if launches else None


def running_agent(**config) -> AgentEngine:
    """A registered agent running task t1 in a registered command executor."""
    agent = registered_agent(**config)
    run_task(agent)
    feed(agent, EXEC, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID),
                                          executor_id=pb.ExecutorID(value="t1"), transport=EXEC), 1.0)
    assert bodies(agent, pb.RunExecutorTask, to=EXEC)
    return agent


def executor_update(state: int, uuid: bytes, tid: str = "t1", now: float = 2.0) -> wire.ExecutorStatusUpdate:
    update = pb.StatusUpdate(timestamp=now, uuid=uuid)
    update.framework_id.value = FID
    update.executor_id.value = tid
    update.status.task_id.value = tid
    update.status.state = state
    update.status.uuid = uuid
    update.status.source = R.SOURCE_EXECUTOR
    return wire_updates(wire.ExecutorStatusUpdate, update)


def ack(uuid: bytes, tid: str = "t1") -> wire.StatusUpdateAck:
    return wire.StatusUpdateAck(AID, [(FID, tid, uuid)])


def forwarded(agent: AgentEngine) -> list[pb.StatusUpdate]:
    return [u for m in bodies(agent, wire.StatusUpdateMessage, to=MASTER) for u in updates_in(m)]


# ---------------------------------------------------------------- registration
def test_the_task_table_maps_framework_and_task_ids_to_tasks_held_by_framework():
    table = TaskTable()
    t1, t2, t3, t4 = (Task(pb.TaskInfo(name=n), "f", "e") for n in "abcd")
    table[("f1", "a")], table[("f1", "b")], table[("f2", "a")] = t1, t2, t3
    assert len(table) == 3 and table[("f2", "a")] is t3 and table.get(("f1", "b")) is t2
    assert ("f1", "c") not in table and table.get(("f3", "a")) is None and "f1" not in table
    assert set(table) == {("f1", "a"), ("f1", "b"), ("f2", "a")}
    assert table.by_framework == {"f1": {"a": t1, "b": t2}, "f2": {"a": t3}}
    table[("f1", "a")] = t4  # replaced, not added
    assert len(table) == 3 and table[("f1", "a")] is t4
    del table[("f2", "a")]
    assert len(table) == 2 and "f2" not in table.by_framework  # (no empty framework left behind)
    with pytest.raises(KeyError):
        del table[("f2", "a")]
    with pytest.raises(KeyError):
        table[("f9", "x")]


def test_registration_backoff_doubles_within_bounds_and_is_capped():
    agent = new_agent(registration_backoff=1.0, registration_backoff_max=60.0)
    agent.connect(MASTER, 0.0)
    times = []
    now = 0.0
    while len(times) < 16:
        now = agent.next_deadline()
        agent.tick(now)
        if bodies(agent, pb.RegisterAgent, to=MASTER):
            times.append(now)
    gaps = [times[0]] + [b - a for a, b in zip(times, times[1:])]
    for n, gap in enumerate(gaps):
        assert 0.0 <= gap <= min(1.0 * 2 ** n, 60.0), (n, gap)
    assert max(gaps[8:]) > 8.0  # the bound really grows (a fixed [0, 1] would not get here)


def test_registration_stops_once_registered():
    agent = registered_agent()
    advance(agent, 500.0)
    assert not bodies(agent, pb.RegisterAgent)


def test_a_launch_that_overtakes_the_first_registration_reply_runs_once_the_reply_arrives():
    """The master launched on us, so it registered us, but its AgentRegistered was lost:
    the launch is held until a reply names us (the master does not send it again);
    one for another agent id (a master that has since failed over) is dropped."""
    agent = new_agent()
    agent.connect(MASTER, 0.0)
    advance(agent, 1.0)
    info = framework_info(framework_id=FID)
    feed(agent, MASTER, pb.RunTask(framework=info, task=command_task("t1", AID)), 1.5)
    feed(agent, MASTER, pb.RunTask(framework=info, task=command_task("t2", "other-agent")), 1.5)
    assert not others(agent.take_actions(), LaunchExecutor)
    feed(agent, MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value=AID), master_info=pb.MasterInfo(
        id="m1", hostname="m", port=5050, transport=MASTER)), 3.0)
    (launch,) = others(agent.take_actions(), LaunchExecutor)
    assert launch.executor.executor_id.value == "t1"
    assert set(agent.tasks) == {(FID, "t1")}


# -------------------------------------------------------------- update streams
def test_only_the_head_is_forwarded_and_the_next_after_its_ack():
    agent = running_agent()
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.0)
    feed(agent, EXEC, executor_update(pb.TASK_FINISHED, b"u2"), 2.1)
    out = sent(agent)
    assert [b.rows[0][1] for to, b in out if isinstance(b, wire.ExecutorStatusUpdateAck)] == [b"u1", b"u2"]
    (head,) = [updates_in(b)[0] for to, b in out if isinstance(b, wire.StatusUpdateMessage)]
    assert head.uuid == b"u1" and head.status.state == pb.TASK_RUNNING
    feed(agent, MASTER, ack(b"u1"), 3.0)
    (nxt,) = forwarded(agent)
    assert nxt.uuid == b"u2" and nxt.status.state == pb.TASK_FINISHED


def test_forwarded_head_carries_the_latest_state():
    agent = running_agent()
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.0)
    sent(agent)
    feed(agent, EXEC, executor_update(pb.TASK_FINISHED, b"u2"), 2.1)
    sent(agent)
    advance(agent, 12.5)  # the head is retried
    (retry,) = forwarded(agent)
    assert retry.uuid == b"u1" and retry.latest_state == pb.TASK_FINISHED


def test_duplicate_updates_are_dropped_but_acked():
    agent = running_agent()
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.0)
    sent(agent)
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.5)
    out = sent(agent)
    assert [b.rows[0][1] for _, b in out if isinstance(b, wire.ExecutorStatusUpdateAck)] == [b"u1"]
    assert not [b for _, b in out if isinstance(b, wire.StatusUpdateMessage)]
    assert agent.counters["duplicate_status_updates"] == 1
    # acked already: a late duplicate is still not forwarded again
    feed(agent, MASTER, ack(b"u1"), 3.0)
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 3.5)
    assert not forwarded(agent)


def test_a_task_remembers_the_uuids_of_its_last_acknowledged_updates_only():
    """An executor's retry of an update acknowledged long ago (past
    `acknowledged_uuids_per_task` newer ones) is taken as new; one of the last is dropped."""
    agent = running_agent(acknowledged_uuids_per_task=2)
    for i in range(3):
        feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u%d" % i), 2.0 + i)
        feed(agent, MASTER, ack(b"u%d" % i), 2.5 + i)
    sent(agent)
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u2"), 6.0)
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 6.0)
    assert not forwarded(agent) and agent.counters["duplicate_status_updates"] == 2
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u0"), 7.0)
    assert [u.uuid for u in forwarded(agent)] == [b"u0"]


@pytest.mark.parametrize("remembered", [-1, 65])
def test_an_acknowledged_uuid_memory_the_agent_cannot_keep_is_refused(remembered):
    with pytest.raises(ValueError, match=f"not {remembered}"):
        new_agent(acknowledged_uuids_per_task=remembered)


def test_stale_ack_is_ignored():
    agent = running_agent()
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.0)
    feed(agent, EXEC, executor_update(pb.TASK_FINISHED, b"u2"), 2.1)
    sent(agent)
    feed(agent, MASTER, ack(b"u2"), 3.0)  # not the head
    assert not forwarded(agent)
    assert agent.counters["stale_acks"] == 1
    assert agent.updates.head((FID, "t1"))[0] == b"u1"


def test_head_is_retried_with_doubling_backoff():
    agent = running_agent(status_update_backoff=10.0, status_update_backoff_max=600.0, ping_timeout=10_000.0)
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.0)
    sent(agent)
    times = []
    while len(times) < 8:
        now = agent.next_deadline()
        agent.tick(now)
        if forwarded(agent):
            times.append(now)
    gaps = [round(b - a, 6) for a, b in zip([2.0] + times, times)]
    assert gaps == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0]


def test_terminal_ack_forgets_the_task():
    agent = running_agent()
    feed(agent, EXEC, executor_update(pb.TASK_FINISHED, b"u1"), 2.0)
    sent(agent)
    feed(agent, MASTER, ack(b"u1"), 3.0)
    assert (FID, "t1") not in agent.tasks and len(agent.updates) == 0


def test_sending_pauses_while_disconnected_and_heads_are_resent_on_reregistration():
    agent = running_agent(ping_timeout=75.0)
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.0)
    feed(agent, EXEC, executor_update(pb.TASK_FINISHED, b"u2"), 2.1)
    sent(agent)
    advance(agent, 76.0)  # no pings: the master is lost at 76
    actions = agent.take_actions()
    assert others(actions, MasterLost)
    assert agent.connection is Connection.DISCONNECTED
    advance(agent, 2000.0)
    assert not forwarded(agent)  # paused
    agent.connect(MASTER, 2000.0)
    advance(agent, 2001.0)
    (rereg,) = bodies(agent, pb.ReregisterAgent, to=MASTER)
    assert rereg.agent.id.value == AID
    (report,) = rereg.tasks
    assert report.task.task_id.value == "t1" and report.state == pb.TASK_FINISHED
    assert [u.uuid for u in report.unacknowledged] == [b"u1", b"u2"]
    assert [e.executor_info.executor_id.value for e in rereg.executors] == ["t1"]
    assert [f.id.value for f in rereg.frameworks] == [FID]
    feed(agent, MASTER, pb.AgentReregistered(agent_id=pb.AgentID(value=AID), master_info=pb.MasterInfo(
        id="m1", hostname="m", port=5050, transport=MASTER)), 2001.0)
    (head,) = forwarded(agent)
    assert head.uuid == b"u1"


# ------------------------------------------------------------ launch and kill
def kill(tid: str = "t1") -> pb.KillTask:
    return pb.KillTask(framework_id=pb.FrameworkID(value=FID), task_id=pb.TaskID(value=tid))


def test_a_launch_names_the_tasks_run_to_the_master_once_and_no_update_carries_it():
    """The master learns a task's executor run (its sandbox) from one TaskContainers entry sent
    with the launch, before any update; neither the executor's updates nor the agent's
    own carry the container id; a reregistration report names it again."""
    agent = registered_agent()
    feed(agent, MASTER, pb.RunTask(framework=framework_info(framework_id=FID), task=command_task("t1", AID)), 1.0)
    actions = agent.take_actions()
    (launch,) = others(actions, LaunchExecutor)
    sends = [(a.to, a.body) for a in actions if hasattr(a, "body")]
    assert sends == [(MASTER, pb.TaskContainers(framework_ids=[FID], task_ids=["t1"], executor_ids=["t1"],
                                                container_ids=[launch.container_id]))]
    feed(agent, EXEC, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID),
                                          executor_id=pb.ExecutorID(value="t1"), transport=EXEC), 1.0)
    for i, state in enumerate((pb.TASK_STARTING, pb.TASK_RUNNING)):
        feed(agent, EXEC, executor_update(state, b"u%d" % i), 2.0 + i)
        feed(agent, MASTER, ack(b"u%d" % i), 2.5 + i)
    agent.executor_exited(launch.container_id, -9, "", 5.0)  # the agent's own TASK_FAILED
    out = sent(agent)
    statuses = [row[STATUS] for _, b in out if isinstance(b, wire.StatusUpdateMessage) for row in b.rows]
    assert [pb.TaskStatus.FromString(s).state for s in statuses] == [pb.TASK_STARTING, pb.TASK_RUNNING, pb.TASK_FAILED]
    assert not any(launch.container_id.encode() in s for s in statuses)
    assert not [b for _, b in out if isinstance(b, pb.TaskContainers)]  # once per launch
    agent.connect(MASTER, 6.0)  # a new master (or the same one, restarted): a report
    advance(agent, 10.0)
    (report,) = bodies(agent, pb.ReregisterAgent, to=MASTER)[-1].tasks
    assert (report.executor_id.value, report.container_id.value) == ("t1", launch.container_id)


def test_a_turns_launches_name_their_runs_in_one_message_when_batching():
    agent = registered_agent()
    agent.batch = True
    for tid in ("t1", "t2"):
        feed(agent, MASTER, pb.RunTask(framework=framework_info(framework_id=FID), task=command_task(tid, AID)), 1.0)
    actions = agent.take_actions()
    runs = [launch.container_id for launch in others(actions, LaunchExecutor)]
    assert [(a.to, a.body) for a in actions if hasattr(a, "body")] == [(MASTER, pb.TaskContainers(
        framework_ids=[FID, FID], task_ids=["t1", "t2"], executor_ids=["t1", "t2"], container_ids=runs))]


def test_kill_before_the_executor_registers_is_killed_during_launch():
    agent = registered_agent()
    launch = run_task(agent)
    feed(agent, MASTER, kill(), 1.5)
    actions = agent.take_actions()
    (container,) = others(actions, KillContainer)
    assert container.container_id == launch.container_id
    (update,) = [updates_in(a.body)[0] for a in actions if hasattr(a, "body") and isinstance(a.body, wire.StatusUpdateMessage)]
    assert update.status.state == pb.TASK_KILLED
    assert update.status.reason == R.REASON_TASK_KILLED_DURING_LAUNCH
    assert update.status.source == R.SOURCE_AGENT and update.uuid


def test_kill_of_a_running_task_goes_to_its_executor():
    agent = running_agent()
    feed(agent, MASTER, kill(), 2.0)
    (msg,) = bodies(agent, pb.KillExecutorTask, to=EXEC)
    assert msg.task_id.value == "t1"


def test_executor_exit_fails_its_live_tasks():
    agent = running_agent()
    feed(agent, EXEC, executor_update(pb.TASK_RUNNING, b"u1"), 2.0)
    feed(agent, MASTER, ack(b"u1"), 2.5)
    sent(agent)
    container = next(iter(agent.containers))
    agent.executor_exited(container, -9, "", 3.0)
    out = sent(agent)
    (update,) = [updates_in(b)[0] for _, b in out if isinstance(b, wire.StatusUpdateMessage)]
    assert update.status.state == pb.TASK_FAILED
    assert update.status.reason == R.REASON_EXECUTOR_TERMINATED
    assert update.status.source == R.SOURCE_AGENT
    (exited,) = [b for _, b in out if isinstance(b, pb.ExitedExecutor)]
    assert exited.status == -9


def test_executor_exit_after_a_terminal_update_fails_nothing():
    agent = running_agent()
    feed(agent, EXEC, executor_update(pb.TASK_FINISHED, b"u1"), 2.0)
    sent(agent)
    agent.executor_exited(next(iter(agent.containers)), 0, "", 3.0)
    assert not forwarded(agent)
    feed(agent, MASTER, ack(b"u1"), 3.5)
    assert len(agent.updates) == 0


def test_executor_registration_timeout_fails_its_tasks():
    agent = registered_agent(executor_registration_timeout=60.0, ping_timeout=10_000.0)
    launch = run_task(agent, now=1.0)
    advance(agent, 60.9)
    assert not forwarded(agent)
    advance(agent, 61.0)
    actions = agent.take_actions()
    (update,) = [updates_in(a.body)[0] for a in actions if hasattr(a, "body") and isinstance(a.body, wire.StatusUpdateMessage)]
    assert update.status.state == pb.TASK_FAILED
    assert update.status.reason == R.REASON_EXECUTOR_REGISTRATION_TIMEOUT
    assert [k.container_id for k in others(actions, KillContainer)] == [launch.container_id]


def test_a_duplicate_run_task_launches_once():
    agent = registered_agent()
    assert run_task(agent) is not None
    assert run_task(agent) is None
    assert agent.counters["tasks_launched"] == 1


def test_a_container_runs_as_its_command_user_else_its_frameworks():
    agent = registered_agent()
    info = framework_info(framework_id=FID)  # user "u"
    feed(agent, MASTER, pb.RunTask(framework=info, task=command_task("t1", AID)), 1.0)
    as_user = command_task("t2", AID)
    as_user.command.user = "www"
    feed(agent, MASTER, pb.RunTask(framework=info, task=as_user), 1.0)
    launches = others(agent.take_actions(), LaunchExecutor)
    assert [(launch.executor.executor_id.value, launch.user) for launch in launches] == [("t1", "u"), ("t2", "www")]
