"""AgentEngine checkpointing and recovery: journal-before-ack ordering, streams rebuilt
from journals, executors reregistering (or not) within the recovery window, cleanup
mode, and the executor engine's side of an agent restart. Fake clock, no I/O."""
from __future__ import annotations

import random

from corral.net import wire
from corral.engines.agent import (
    AgentConfig,
    AgentEngine,
    CheckpointExecutor,
    CheckpointExecutorExited,
    CheckpointTask,
    DiscardRun,
    Connection,
    ExecutorPhase,
    JournalAppend,
    JournalKind,
    JournalRecord,
    KillContainer,
    RecoveredRun,
    RecoveredState,
    RecoveredTask,
    RecoverMode,
)
from corral.engines.base import Callback, Send
from corral.engines.executor import ExecutorEngine, ExecutorEvent, Stop, serialise_status
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb

from engine_helpers import MASTER, advance, bodies, command_task, feed, framework_info, others, resources, roundtrip
from engine_helpers import updates_in, wire_updates

EXEC = "tcp://executor"
AGENT = "tcp://agent1"
FID, AID = "fw1", "agent-1"
R = pb.TaskStatus


def checkpointing_framework() -> pb.FrameworkInfo:
    info = framework_info(framework_id=FID)
    info.checkpoint = True
    return info


def new_agent(**config) -> AgentEngine:
    info = pb.AgentInfo(hostname="h1", resources=resources("cpus:4;mem:4096"))
    return AgentEngine(info, AGENT, AgentConfig(**config), random.Random(7))


def registered(agent: AgentEngine, now: float = 1.0) -> None:
    agent.connect(MASTER, now - 1.0)
    advance(agent, now)
    feed(agent, MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value=AID), master_info=pb.MasterInfo(
        id="m1", hostname="m", port=5050, transport=MASTER)), now)
    assert agent.connection is Connection.REGISTERED
    agent.take_actions()


def update(state: int, uuid: bytes, tid: str = "t1", now: float = 2.0) -> pb.StatusUpdate:
    u = pb.StatusUpdate(timestamp=now, uuid=uuid)
    u.framework_id.value = FID
    u.executor_id.value = tid
    u.status.task_id.value = tid
    u.status.state = state
    u.status.uuid = uuid
    u.status.source = R.SOURCE_EXECUTOR
    return u


def recovered_run(journal: list[JournalRecord], tid: str = "t1", transport: str = EXEC,
                  exited: bool = False) -> RecoveredRun:
    info = pb.ExecutorInfo()
    info.executor_id.value = tid
    info.framework_id.value = FID
    info.command.value = "python3"
    return RecoveredRun(FID, info, f"{tid}.1.abc", True, transport, 4242, 99, exited,
                        [RecoveredTask(command_task(tid, AID), journal)])


def recovered_state(*runs: RecoveredRun) -> RecoveredState:
    agent = pb.AgentInfo(hostname="h1", resources=resources("cpus:4;mem:4096"))
    agent.id.value = AID
    return RecoveredState(agent, {FID: checkpointing_framework()}, list(runs))


def UPD(u: pb.StatusUpdate) -> JournalRecord:
    return JournalRecord(JournalKind.UPDATE, u.uuid, u)


def ACK(uuid: bytes) -> JournalRecord:
    return JournalRecord(JournalKind.ACK, uuid)


# -------------------------------------------------------------- checkpointing
def test_checkpointing_framework_journals_each_update_before_it_is_acked_or_forwarded() -> None:
    agent = new_agent()
    registered(agent)
    feed(agent, MASTER, pb.RunTask(framework=checkpointing_framework(), task=command_task("t1", AID)), 1.0)
    actions = agent.take_actions()
    kinds = [type(a).__name__ for a in actions]
    assert kinds.index("CheckpointExecutor") < kinds.index("LaunchExecutor")
    assert others(actions, CheckpointTask)[0].container_id == others(actions, CheckpointExecutor)[0].container_id
    feed(agent, EXEC, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID),
                                          executor_id=pb.ExecutorID(value="t1"), transport=EXEC), 1.0)
    (transport_checkpoint,) = others(agent.take_actions(), CheckpointExecutor)
    assert transport_checkpoint.transport == EXEC

    feed(agent, EXEC, wire_updates(wire.ExecutorStatusUpdate, update(pb.TASK_RUNNING, b"u1")), 2.0)
    actions = agent.take_actions()
    assert isinstance(actions[0], JournalAppend) and actions[0].record.kind is JournalKind.UPDATE
    assert actions[0].record.uuid == b"u1"
    assert [type(a.body).__name__ for a in actions[1:]] == ["StatusUpdateMessage", "ExecutorStatusUpdateAck"]

    feed(agent, EXEC, wire_updates(wire.ExecutorStatusUpdate, update(pb.TASK_FINISHED, b"u2")), 2.5)
    agent.take_actions()
    feed(agent, MASTER, wire.StatusUpdateAck(AID, [(FID, "t1", b"u1")]), 3.0)
    actions = agent.take_actions()
    assert isinstance(actions[0], JournalAppend) and actions[0].record == ACK(b"u1")
    assert isinstance(actions[1], Send) and updates_in(roundtrip(actions[1].body))[0].uuid == b"u2"  # forwarded after the ack is on disk


def test_duplicates_and_stale_acks_are_not_journalled() -> None:
    agent = new_agent()
    registered(agent)
    feed(agent, MASTER, pb.RunTask(framework=checkpointing_framework(), task=command_task("t1", AID)), 1.0)
    feed(agent, EXEC, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID),
                                          executor_id=pb.ExecutorID(value="t1"), transport=EXEC), 1.0)
    feed(agent, EXEC, wire_updates(wire.ExecutorStatusUpdate, update(pb.TASK_RUNNING, b"u1")), 2.0)
    agent.take_actions()
    feed(agent, EXEC, wire_updates(wire.ExecutorStatusUpdate, update(pb.TASK_RUNNING, b"u1")), 2.1)
    feed(agent, MASTER, wire.StatusUpdateAck(AID, [(FID, "t1", b"nope")]), 3.0)
    assert not others(agent.take_actions(), JournalAppend)


def test_frameworks_without_checkpointing_emit_no_checkpoint_actions() -> None:
    agent = new_agent()
    registered(agent)
    feed(agent, MASTER, pb.RunTask(framework=framework_info(framework_id=FID), task=command_task("t1", AID)), 1.0)
    feed(agent, EXEC, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID),
                                          executor_id=pb.ExecutorID(value="t1"), transport=EXEC), 1.0)
    feed(agent, EXEC, wire_updates(wire.ExecutorStatusUpdate, update(pb.TASK_RUNNING, b"u1")), 2.0)
    names = {type(a).__name__ for a in agent.take_actions()}
    assert not names & {"CheckpointAgent", "CheckpointFramework", "CheckpointExecutor", "CheckpointTask", "JournalAppend"}


# ------------------------------------------------------------------- recovery
def test_streams_are_rebuilt_from_journals_and_sent_on_reregistration() -> None:
    running, finished = update(pb.TASK_RUNNING, b"u1"), update(pb.TASK_FINISHED, b"u2")
    done = update(pb.TASK_FINISHED, b"d1", tid="t2")
    agent = new_agent()
    agent.recover(recovered_state(
        recovered_run([UPD(update(pb.TASK_STARTING, b"u0")), ACK(b"u0"), UPD(running), UPD(finished)]),
        recovered_run([UPD(done), ACK(b"d1")], tid="t2", exited=True),
    ), {"t1.1.abc"}, RecoverMode.RECONNECT, 0.0)
    assert agent.agent_id == AID and agent.recovering
    assert (FID, "t2") not in agent.tasks  # its terminal update was acked: over
    assert agent.tasks[(FID, "t1")].state == pb.TASK_FINISHED
    assert [u for u, _ in agent.updates.pending((FID, "t1"))] == [b"u1", b"u2"]
    (reconnect,) = bodies(agent, pb.AgentReconnect, to=EXEC)
    assert reconnect.transport == AGENT

    agent.connect(MASTER, 0.1)
    advance(agent, 1.0)
    assert not bodies(agent, pb.ReregisterAgent)  # not while executors may still come back
    feed(agent, EXEC, pb.ReregisterExecutor(framework_id=pb.FrameworkID(value=FID), executor_id=pb.ExecutorID(value="t1"),
                                            transport=EXEC, tasks=[command_task("t1", AID)],
                                            updates=[running, finished]), 1.0)
    actions = agent.take_actions()
    sends = [(a.to, type(a.body).__name__) for a in actions if isinstance(a, Send)]
    assert sends == [(EXEC, "ExecutorReregistered"), (EXEC, "ExecutorStatusUpdateAck"), (EXEC, "ExecutorStatusUpdateAck")]
    assert not others(actions, JournalAppend)  # both already journalled: duplicates by uuid
    assert not agent.recovering and agent.executors[(FID, "t1")].phase is ExecutorPhase.REGISTERED

    advance(agent, 3.0)
    rereg = bodies(agent, pb.ReregisterAgent, to=MASTER)[-1]  # (retried with backoff until answered)
    assert rereg.agent.id.value == AID
    (report,) = rereg.tasks
    assert report.state == pb.TASK_FINISHED and [u.uuid for u in report.unacknowledged] == [b"u1", b"u2"]
    assert (report.executor_id.value, report.container_id.value) == ("t1", "t1.1.abc")  # its run, from the checkpoint


def test_new_updates_in_the_reregistration_are_journalled_before_they_are_acked() -> None:
    agent = new_agent()
    agent.recover(recovered_state(recovered_run([UPD(update(pb.TASK_RUNNING, b"u1"))])), {"t1.1.abc"},
                  RecoverMode.RECONNECT, 0.0)
    agent.take_actions()
    feed(agent, EXEC, pb.ReregisterExecutor(framework_id=pb.FrameworkID(value=FID), executor_id=pb.ExecutorID(value="t1"),
                                            transport=EXEC, tasks=[command_task("t1", AID)],
                                            updates=[update(pb.TASK_RUNNING, b"u1"), update(pb.TASK_FINISHED, b"u2")]), 0.5)
    actions = agent.take_actions()
    journal = [i for i, a in enumerate(actions) if isinstance(a, JournalAppend)]
    acks = [i for i, a in enumerate(actions) if isinstance(a, Send) and isinstance(a.body, wire.ExecutorStatusUpdateAck)]
    assert len(journal) == 1 and actions[journal[0]].record.uuid == b"u2"
    assert journal[0] < acks[1]
    assert [u for u, _ in agent.updates.pending((FID, "t1"))] == [b"u1", b"u2"]


def test_executor_not_back_within_the_window_is_killed_and_its_tasks_fail() -> None:
    agent = new_agent(recovery_timeout=2.0)
    agent.recover(recovered_state(recovered_run([UPD(update(pb.TASK_RUNNING, b"u1")), ACK(b"u1")])), {"t1.1.abc"},
                  RecoverMode.RECONNECT, 0.0)
    agent.connect(MASTER, 0.0)
    agent.take_actions()
    advance(agent, 1.9)
    assert agent.recovering and not others(agent.take_actions(), KillContainer)
    advance(agent, 2.0)
    actions = agent.take_actions()
    assert others(actions, KillContainer) == [KillContainer("t1.1.abc", 0.0)]
    (failed,) = [a.record.update for a in others(actions, JournalAppend)]
    assert failed.status.state == pb.TASK_FAILED
    assert failed.status.reason == R.REASON_EXECUTOR_REREGISTRATION_TIMEOUT and failed.status.source == R.SOURCE_AGENT
    assert not agent.recovering
    advance(agent, 4.0)
    assert bodies(agent, pb.ReregisterAgent, to=MASTER)
    # the killed process's exit (reported by the daemon's watcher) marks the run over
    agent.executor_exited("t1.1.abc", -1, "recovered executor exited", 5.0)
    assert others(agent.take_actions(), CheckpointExecutorExited)
    assert (FID, "t1") not in agent.executors


def test_executor_found_dead_fails_its_tasks_without_waiting() -> None:
    agent = new_agent()
    agent.recover(recovered_state(recovered_run([UPD(update(pb.TASK_RUNNING, b"u1")), ACK(b"u1")])), set(),
                  RecoverMode.RECONNECT, 0.0)
    actions = agent.take_actions()
    (failed,) = [a.record.update for a in others(actions, JournalAppend)]
    assert failed.status.reason == R.REASON_EXECUTOR_TERMINATED
    assert others(actions, CheckpointExecutorExited)
    assert not agent.recovering and not agent.executors
    assert not bodies(agent, pb.AgentReconnect)


def test_cleanup_kills_live_executors_and_fails_their_tasks() -> None:
    agent = new_agent()
    agent.recover(recovered_state(recovered_run([UPD(update(pb.TASK_RUNNING, b"u1")), ACK(b"u1")])), {"t1.1.abc"},
                  RecoverMode.CLEANUP, 0.0)
    actions = agent.take_actions()
    assert others(actions, KillContainer) == [KillContainer("t1.1.abc", 0.0)]
    (failed,) = [a.record.update for a in others(actions, JournalAppend)]
    assert failed.status.state == pb.TASK_FAILED and failed.status.reason == R.REASON_AGENT_RESTARTED
    assert not [a for a in actions if isinstance(a, Send) and isinstance(a.body, pb.AgentReconnect)]
    assert not agent.recovering


def test_task_the_executor_never_received_is_sent_after_reregistration() -> None:
    agent = new_agent()
    agent.recover(recovered_state(recovered_run([])), {"t1.1.abc"}, RecoverMode.RECONNECT, 0.0)
    agent.take_actions()
    feed(agent, EXEC, pb.ReregisterExecutor(framework_id=pb.FrameworkID(value=FID), executor_id=pb.ExecutorID(value="t1"),
                                            transport=EXEC), 0.5)
    (run,) = bodies(agent, pb.RunExecutorTask, to=EXEC)
    assert run.task.task_id.value == "t1"


# ------------------------------------------------------- the executor's side
def executor(checkpoint: bool) -> ExecutorEngine:
    engine = ExecutorEngine(FID, "t1", AGENT, EXEC, rng=random.Random(1), checkpoint=checkpoint, recovery_timeout=30.0)
    engine.start(0.0)
    feed(engine, AGENT, pb.ExecutorRegistered(
        executor_info=recovered_run([]).info, framework_id=pb.FrameworkID(value=FID),
        framework_info=checkpointing_framework(), agent_id=pb.AgentID(value=AID), agent_info=pb.AgentInfo(hostname="h")), 0.0)
    feed(engine, AGENT, pb.RunExecutorTask(framework=checkpointing_framework(), task=command_task("t1", AID)), 0.0)
    engine.take_actions()
    return engine


def test_executor_reregisters_with_a_restarted_agent_and_resends_its_updates() -> None:
    engine = executor(checkpoint=True)
    engine.send_status_update(serialise_status(pb.TaskStatus(task_id=pb.TaskID(value="t1"), state=pb.TASK_FINISHED)), 1.0)
    engine.take_actions()
    engine.peer_event(AGENT, PeerEvent.DISCONNECTED, 1.5)
    assert [a.event for a in others(engine.take_actions(), Callback)] == [ExecutorEvent.DISCONNECTED]
    new_agent_address = "tcp://agent1-restarted"
    feed(engine, new_agent_address, pb.AgentReconnect(transport=new_agent_address), 3.0)
    (rereg,) = bodies(engine, pb.ReregisterExecutor, to=new_agent_address)
    assert [t.task_id.value for t in rereg.tasks] == ["t1"]
    assert [u.status.state for u in rereg.updates] == [pb.TASK_FINISHED]
    advance(engine, 4.0)
    assert bodies(engine, pb.ReregisterExecutor, to=new_agent_address)  # retried until answered
    feed(engine, new_agent_address, pb.ExecutorReregistered(agent_id=pb.AgentID(value=AID),
                                                            agent_info=pb.AgentInfo(hostname="h")), 4.5)
    actions = engine.take_actions()
    assert [a.event for a in others(actions, Callback)] == [ExecutorEvent.REREGISTERED]
    assert [a.to for a in actions if isinstance(a, Send)] == [new_agent_address]  # the head, at once
    advance(engine, 40.0)
    assert not others(engine.take_actions(), Stop)  # the recovery timer was cancelled


def test_executor_gives_up_after_the_recovery_timeout() -> None:
    engine = executor(checkpoint=True)
    engine.peer_event(AGENT, PeerEvent.DISCONNECTED, 1.0)
    engine.take_actions()
    advance(engine, 30.9)
    assert not others(engine.take_actions(), Stop)
    advance(engine, 31.0)
    actions = engine.take_actions()
    assert others(actions, Stop) == [Stop(flush=False)]
    assert [a.event for a in others(actions, Callback)] == [ExecutorEvent.SHUTDOWN]


def test_executor_of_a_framework_without_checkpointing_shuts_down_when_the_agent_goes() -> None:
    engine = executor(checkpoint=False)
    engine.peer_event(AGENT, PeerEvent.DISCONNECTED, 1.0)
    actions = engine.take_actions()
    assert others(actions, Stop) == [Stop(flush=False)]
    feed(engine, "tcp://other", pb.AgentReconnect(transport="tcp://other"), 2.0)
    assert not bodies(engine, pb.ReregisterExecutor)


# ------------------------------------------------- checkpoints of finished runs
def running_checkpointed_task(agent: AgentEngine) -> str:
    """t1 of a checkpointing framework launched, its executor registered; its container id."""
    registered(agent)
    feed(agent, MASTER, pb.RunTask(framework=checkpointing_framework(), task=command_task("t1", AID)), 1.0)
    (checkpoint,) = others(agent.take_actions(), CheckpointExecutor)
    feed(agent, EXEC, pb.RegisterExecutor(framework_id=pb.FrameworkID(value=FID),
                                          executor_id=pb.ExecutorID(value="t1"), transport=EXEC), 1.0)
    agent.take_actions()
    return checkpoint.container_id


def ack_from_master(agent: AgentEngine, uuid: bytes, now: float) -> list:
    feed(agent, MASTER, wire.StatusUpdateAck(AID, [(FID, "t1", uuid)]), now)
    return agent.take_actions()


def test_a_finished_runs_checkpoint_goes_once_its_last_update_is_acknowledged() -> None:
    agent = new_agent()
    container = running_checkpointed_task(agent)
    feed(agent, EXEC, wire_updates(wire.ExecutorStatusUpdate, update(pb.TASK_FINISHED, b"u1")), 2.0)
    agent.take_actions()
    agent.executor_exited(container, 0, "", 3.0)
    assert not others(agent.take_actions(), DiscardRun)  # the TASK_FINISHED is not acknowledged yet
    actions = ack_from_master(agent, b"u1", 4.0)
    kinds = [type(a) for a in actions]
    assert kinds == [JournalAppend, DiscardRun]  # the ack is on disk first
    assert actions[1] == DiscardRun(FID, "t1", container)


def test_an_executor_ending_after_its_tasks_were_acknowledged_discards_its_run_at_once() -> None:
    agent = new_agent()
    container = running_checkpointed_task(agent)
    feed(agent, EXEC, wire_updates(wire.ExecutorStatusUpdate, update(pb.TASK_FINISHED, b"u1")), 2.0)
    agent.take_actions()
    assert not others(ack_from_master(agent, b"u1", 3.0), DiscardRun)  # the executor still runs
    agent.executor_exited(container, 0, "", 4.0)
    assert others(agent.take_actions(), DiscardRun) == [DiscardRun(FID, "t1", container)]


def test_an_executor_that_dies_discards_its_run_after_the_failure_it_causes_is_acknowledged() -> None:
    agent = new_agent()
    container = running_checkpointed_task(agent)
    agent.executor_exited(container, -9, "", 2.0)
    (failed,) = [u for b in bodies(agent, wire.StatusUpdateMessage, to=MASTER) for u in updates_in(b)]
    assert failed.status.state == pb.TASK_FAILED
    assert not others(agent.take_actions(), DiscardRun)
    assert others(ack_from_master(agent, failed.uuid, 3.0), DiscardRun) == [DiscardRun(FID, "t1", container)]


def test_recovery_discards_ended_runs_whose_updates_were_all_acknowledged_and_keeps_the_others() -> None:
    done = update(pb.TASK_FINISHED, b"d1", tid="t1")
    pending = update(pb.TASK_FAILED, b"p1", tid="t2")
    agent = new_agent()
    agent.recover(recovered_state(recovered_run([UPD(done), ACK(b"d1")], tid="t1", exited=True),
                                  recovered_run([UPD(pending)], tid="t2", exited=True)), set(), RecoverMode.RECONNECT, 0.0)
    assert others(agent.take_actions(), DiscardRun) == [DiscardRun(FID, "t1", "t1.1.abc")]
    registered(agent, 1.0)
    feed(agent, MASTER, wire.StatusUpdateAck(AID, [(FID, "t2", b"p1")]), 2.0)
    assert others(agent.take_actions(), DiscardRun) == [DiscardRun(FID, "t2", "t2.1.abc")]
