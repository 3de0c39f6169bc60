"""ExecutorEngine: registration retries and reliable, per-task ordered status updates."""
from __future__ import annotations

import random

from corral.net import wire
from corral.engines.executor import AllAcknowledged, ExecutorEngine, serialise_status
from corral.protos import corral_pb2 as pb

from engine_helpers import bodies, feed, framework_info, others, sent
from engine_helpers import updates_in

AGENT, ME = "tcp://agent1", "tcp://exec"
FID, EID, AID = "fw1", "e1", "agent-1"


def registered() -> ExecutorEngine:
    e = ExecutorEngine(FID, EID, AGENT, ME, status_update_backoff=10.0, rng=random.Random(5))
    e.start(0.0)
    assert bodies(e, pb.RegisterExecutor, to=AGENT)
    feed(e, AGENT, pb.ExecutorRegistered(
        executor_info=pb.ExecutorInfo(executor_id=pb.ExecutorID(value=EID), command=pb.CommandInfo(value="x")),
        framework_id=pb.FrameworkID(value=FID), framework_info=framework_info(framework_id=FID),
        agent_id=pb.AgentID(value=AID), agent_info=pb.AgentInfo(hostname="h")), 0.1)
    e.take_actions()
    return e


def send(e: ExecutorEngine, tid: str, state: int, now: float) -> None:
    e.send_status_update(serialise_status(pb.TaskStatus(task_id=pb.TaskID(value=tid), state=state)), now)


def updates(e: ExecutorEngine) -> list[pb.StatusUpdate]:
    return [u for m in bodies(e, wire.ExecutorStatusUpdate, to=AGENT) for u in updates_in(m)]


def ack(update: pb.StatusUpdate) -> wire.ExecutorStatusUpdateAck:
    return wire.ExecutorStatusUpdateAck(AID, FID, [(update.status.task_id.value, update.uuid)])


def test_registration_is_retried_until_registered():
    e = ExecutorEngine(FID, EID, AGENT, ME, rng=random.Random(5))
    e.start(0.0)
    sent(e)
    e.tick(1.0)
    e.tick(2.0)
    assert len(bodies(e, pb.RegisterExecutor, to=AGENT)) == 2


def test_updates_are_stamped_and_retried_until_acked():
    e = registered()
    send(e, "t1", pb.TASK_RUNNING, 1.0)
    (first,) = updates(e)
    assert len(first.uuid) == 16 and first.status.uuid == first.uuid
    assert first.status.source == pb.TaskStatus.SOURCE_EXECUTOR and first.agent_id.value == AID
    e.tick(10.9)
    assert updates(e) == []
    e.tick(11.0)
    e.tick(31.0)
    assert [u.uuid for u in updates(e)] == [first.uuid, first.uuid]
    feed(e, AGENT, ack(first), 31.5)
    assert others(e.take_actions(), AllAcknowledged)
    e.tick(10_000.0)
    assert updates(e) == [] and e.unacknowledged() == 0


def test_updates_of_one_task_go_in_order_one_at_a_time():
    e = registered()
    send(e, "t1", pb.TASK_STARTING, 1.0)
    send(e, "t1", pb.TASK_RUNNING, 1.1)
    send(e, "t1", pb.TASK_FINISHED, 1.2)
    send(e, "t2", pb.TASK_RUNNING, 1.3)  # another task's stream is independent
    out = updates(e)
    assert [(u.status.task_id.value, u.status.state) for u in out] == [("t1", pb.TASK_STARTING), ("t2", pb.TASK_RUNNING)]
    seen = [out[0]]
    for _ in range(2):
        feed(e, AGENT, ack(seen[-1]), 2.0)
        (nxt,) = updates(e)
        seen.append(nxt)
    assert [u.status.state for u in seen] == [pb.TASK_STARTING, pb.TASK_RUNNING, pb.TASK_FINISHED]


def test_stale_ack_does_not_release_the_next_update():
    e = registered()
    send(e, "t1", pb.TASK_RUNNING, 1.0)
    send(e, "t1", pb.TASK_FINISHED, 1.1)
    (head,) = updates(e)
    stale = ack(head)
    stale.rows[0] = (stale.rows[0][0], b"x" * 16)
    feed(e, AGENT, stale, 2.0)
    assert updates(e) == [] and e.unacknowledged() == 2


def test_a_status_an_executor_may_not_send_is_refused_where_it_is_made() -> None:
    import pytest

    from corral import InvalidStatusUpdate
    from corral.executor import Executor, ExecutorDriver

    with pytest.raises(InvalidStatusUpdate, match="needs a task id and a state"):
        serialise_status(pb.TaskStatus())
    with pytest.raises(InvalidStatusUpdate, match="needs a state"):
        serialise_status(pb.TaskStatus(task_id=pb.TaskID(value="t1")))
    with pytest.raises(InvalidStatusUpdate, match="may not send TASK_STAGING.*'t1'"):
        serialise_status(pb.TaskStatus(task_id=pb.TaskID(value="t1"), state=pb.TASK_STAGING))
    with pytest.raises(InvalidStatusUpdate, match="not an empty one"):
        serialise_status(pb.TaskStatus(task_id=pb.TaskID(value=""), state=pb.TASK_RUNNING))
    # the driver raises to its caller (not on its I/O thread, where it would only be logged)
    driver = ExecutorDriver(Executor(), {"CORRAL_AGENT_ENDPOINT": AGENT, "CORRAL_FRAMEWORK_ID": FID,
                                         "CORRAL_EXECUTOR_ID": EID})
    with pytest.raises(InvalidStatusUpdate):
        driver.send_status_update(pb.TaskStatus(state=pb.TASK_RUNNING))


def test_the_update_sent_is_the_status_as_it_was_when_it_was_serialised() -> None:
    e = registered()
    status = pb.TaskStatus(task_id=pb.TaskID(value="t1"), state=pb.TASK_RUNNING, message="first")
    data = serialise_status(status)
    status.message = "changed later"
    e.send_status_update(data, 1.0)
    (update,) = updates(e)
    assert update.status.message == "first" and update.status.state == pb.TASK_RUNNING
