"""What the master engine keeps and tells operators: each task's status history, removed
frameworks with their tasks, terminal-state and per-framework counters, operator events
(only while someone listens), operator kills and teardowns, and the views of it all."""
from __future__ import annotations

import json

import pytest

from corral.engines.master._status import MAX_TASK_STATUSES
from corral.engines.master.operator import OperatorEvent, OperatorEvents
from corral.engines.master.snapshot import state_view, status_view, task_view
from corral.net import wire
from corral.protos import corral_pb2 as pb

from engine_helpers import accept, bodies, command_task, feed, new_master, offers, register_agent, status_update
from engine_helpers import subscribe, wire_updates

S1, A1 = "tcp://sched1", "tcp://agent1"


@pytest.fixture
def running():
    """A master with one agent, one framework and its task t1 (RUNNING, acknowledged)."""
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t1", aid)]), 2.0)
    feed(m, A1, update(fid, aid, "t1", pb.TASK_RUNNING, b"u1", now=3.0), 3.0)
    m.take_actions()
    return m, aid, fid


def update(fid, aid, tid, state, uuid, *, healthy=None, container="c1", now=0.0):
    status = pb.StatusUpdate(timestamp=now, uuid=uuid)
    status.framework_id.value = fid
    status.agent_id.value = aid
    s = status.status
    s.task_id.value, s.state, s.uuid, s.timestamp, s.source = tid, state, uuid, now, pb.TaskStatus.SOURCE_EXECUTOR
    s.executor_id.value, s.container_id = tid, container
    if healthy is not None:
        s.healthy = healthy
    return wire_updates(wire.StatusUpdateMessage, status)


def history(m, fid, tid):
    fw = m.frameworks[fid]
    task = fw.tasks.get(tid) or next(t for t in fw.completed if t.id == tid)
    return [(s["state"], s["healthy"]) for s in map(status_view, task.statuses)]


def test_a_task_keeps_the_updates_that_changed_its_state_or_health(running):
    m, aid, fid = running
    feed(m, A1, update(fid, aid, "t1", pb.TASK_RUNNING, b"u1", now=3.0), 3.1)  # a retry: nothing new
    feed(m, A1, update(fid, aid, "t1", pb.TASK_RUNNING, b"u2", healthy=True, now=4.0), 4.0)
    feed(m, A1, update(fid, aid, "t1", pb.TASK_RUNNING, b"u3", healthy=True, now=5.0), 5.0)  # no change
    feed(m, A1, update(fid, aid, "t1", pb.TASK_FINISHED, b"u4", now=6.0), 6.0)
    assert history(m, fid, "t1") == [("TASK_RUNNING", None), ("TASK_RUNNING", True), ("TASK_FINISHED", None)]
    view = task_view(m.frameworks[fid].tasks["t1"])
    assert view["sandbox"] == f"{fid}/t1/c1" and view["executor_id"] == "t1"
    assert [s["timestamp"] for s in view["statuses"]] == [3.0, 4.0, 6.0]


def test_the_history_keeps_the_first_and_the_latest_statuses(running):
    m, aid, fid = running
    for i in range(2 * MAX_TASK_STATUSES):
        feed(m, A1, update(fid, aid, "t1", pb.TASK_RUNNING, b"h%d" % i, healthy=bool(i % 2), now=10.0 + i), 10.0 + i)
    task = m.frameworks[fid].tasks["t1"]
    assert len(task.statuses) == MAX_TASK_STATUSES
    assert status_view(task.statuses[0])["timestamp"] == 3.0
    assert status_view(task.statuses[-1])["timestamp"] == 10.0 + 2 * MAX_TASK_STATUSES - 1


def test_the_masters_own_statuses_join_the_history_and_count(running):
    m, aid, fid = running
    m.mark_gone(aid, 7.0)
    fw = m.frameworks[fid]
    (task,) = fw.completed
    last = status_view(task.statuses[-1])
    assert (last["state"], last["source"], last["reason"]) == (
        "TASK_GONE_BY_OPERATOR", "SOURCE_MASTER", "REASON_AGENT_REMOVED_BY_OPERATOR")
    assert m.task_ends == {pb.TASK_GONE_BY_OPERATOR: 1}


def test_a_removed_framework_is_kept_with_its_tasks_killed(running):
    m, aid, fid = running
    assert m.operator_teardown(fid, 8.0) == ""
    assert fid not in m.frameworks
    (fw,) = m.completed_frameworks
    (task,) = fw.completed
    assert task.state == pb.TASK_KILLED
    assert status_view(task.statuses[-1])["reason"] == "REASON_FRAMEWORK_REMOVED"
    assert m.task_ends == {pb.TASK_KILLED: 1}
    assert [e.message for e in bodies(m, pb.Error, to=S1)] == [f"framework {fid} was torn down by an operator"]
    view = state_view(m)
    assert view["completed_frameworks"][0]["completed_tasks"][0]["state"] == "TASK_KILLED"
    assert view["completed_frameworks"][0]["unregistered_time"] == 8.0
    assert view["task_counters"]["TASK_KILLED"] == 1
    json.dumps(view)
    assert m.operator_teardown(fid, 9.0) == f"unknown framework {fid!r}"


def test_completed_frameworks_are_bounded():
    m = new_master(max_completed_frameworks=2)
    fids = [subscribe(m, f"tcp://s{i}") for i in range(3)]
    for i, fid in enumerate(fids):
        m.operator_teardown(fid, float(i))
    assert [f.id for f in m.completed_frameworks] == fids[1:]


def test_an_operator_kill_goes_to_the_tasks_agent(running):
    m, aid, fid = running
    assert m.operator_kill(fid, "t1", 8.0) == ""
    (kill,) = bodies(m, pb.KillTask, to=A1)
    assert (kill.framework_id.value, kill.task_id.value) == (fid, "t1")
    assert m.operator_kill(fid, "nope", 8.0) == f"no live task 'nope' of framework {fid!r}"


def test_frameworks_count_updates_acks_and_reconcile_calls(running):
    m, aid, fid = running
    feed(m, S1, wire.Acknowledge(fid, [(aid, "t1", b"u1")]), 4.0)
    feed(m, S1, pb.Reconcile(framework_id=pb.FrameworkID(value=fid)), 5.0)
    fw = m.frameworks[fid]
    assert (fw.status_updates, fw.acknowledgements, fw.reconcile_calls, fw.last_reconcile) == (1, 1, 1, 5.0)


def test_operator_events_are_made_only_while_someone_listens(running):
    m, aid, fid = running
    assert m.operator_events is None
    feed(m, A1, update(fid, aid, "t1", pb.TASK_FINISHED, b"u9"), 5.0)
    m.operator_events = events = OperatorEvents()
    (offer,) = offers(m, 6.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t2", aid)]), 6.0)
    feed(m, A1, status_update(fid, aid, "t2", pb.TASK_STARTING, b"v1"), 7.0)
    feed(m, A1, update(fid, aid, "t2", pb.TASK_RUNNING, b"v2", healthy=True), 7.5)
    agent2 = register_agent(m, "tcp://agent2", now=8.0)
    m.operator_teardown(fid, 9.0)
    assert [(kind, subject.id) for kind, subject in events.log] == [
        (OperatorEvent.TASK_ADDED, "t2"), (OperatorEvent.AGENT_ADDED, agent2), (OperatorEvent.FRAMEWORK_REMOVED, fid)]
    assert events.updated == {"t2"}  # (running, then killed with its framework)


def test_one_status_message_in_sixty_four_is_sampled_for_the_relay_latency(running):
    from corral.engines.master.status import RELAY_SAMPLE_EVERY

    m, aid, fid = running
    m.relay_samples.clear()
    for i in range(2 * RELAY_SAMPLE_EVERY):
        feed(m, A1, update(fid, aid, "t1", pb.TASK_RUNNING, b"s%d" % i, now=float(i)), float(i) + 0.5)
    assert len(m.relay_samples) == 2
    relayed_at, status = m.relay_samples[-1]
    assert relayed_at - status_view(status)["timestamp"] == 0.5
