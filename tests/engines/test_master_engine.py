"""MasterEngine: registries, allocation, accept validation, the status-update relay,
reconciliation answers and liveness, fed by hand with a fake clock."""
from __future__ import annotations

import pytest

from corral.net import wire
from corral.engines.master import reconciliation as master_reconciliation
from corral.engines.master import AgentState
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb

from engine_helpers import (
    accept, bodies, command_task, feed, new_master, offers, register_agent, resources, sent,
    status_update, status_updates, subscribe,
)
from engine_helpers import updates_in

S1, S2, A1, A2 = "tcp://sched1", "tcp://sched2", "tcp://agent1", "tcp://agent2"
R = pb.TaskStatus


def updates_to(master, address):
    return status_updates(master, to=address)


@pytest.fixture
def cluster():
    """A master with one agent and one subscribed framework that holds one offer."""
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    return m, aid, fid, offer


def launch(m, fid, offer, *tasks, now=2.0):
    feed(m, S1, accept(fid, [offer.id.value], list(tasks)), now)


# ---------------------------------------------------------------- registration
def test_agent_registration_assigns_an_id_and_a_retry_gets_the_same_one():
    m = new_master()
    first = register_agent(m, A1)
    again = register_agent(m, A1, now=1.0)
    other = register_agent(m, A2)
    assert first == again != other
    assert set(m.agents) == {first, other}


def test_framework_subscribe_and_retried_subscribe_get_the_same_id():
    m = new_master()
    fid = subscribe(m, S1)
    assert subscribe(m, S1, now=1.0) == fid
    assert len(m.frameworks) == 1


def test_failover_with_the_same_id_replaces_the_old_connection_with_a_fatal_error():
    m = new_master()
    fid = subscribe(m, S1, failover_timeout=60.0)
    feed(m, S2, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw", id=pb.FrameworkID(value=fid)),
                             transport=S2, force=True), 1.0)
    out = sent(m)
    (error,) = [b for to, b in out if to == S1 and isinstance(b, pb.Error)]
    assert error.fatal
    (reply,) = [b for to, b in out if to == S2 and isinstance(b, pb.Subscribed)]
    assert reply.framework_id.value == fid and reply.reregistered
    # the old connection is no longer served
    feed(m, S1, pb.Revive(framework_id=pb.FrameworkID(value=fid)), 2.0)
    (error,) = bodies(m, pb.Error, to=S1)
    assert error.fatal


def subscribe_attempt(m, session: bytes, now: float) -> tuple[pb.Subscribed, list[pb.Rescind]]:
    """The master's answer to a Subscribe of attempt `session` and the rescinds it sent."""
    feed(m, S1, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw"), transport=S1, session=session), now)
    out = [b for to, b in sent(m) if to == S1]
    (reply,) = [b for b in out if isinstance(b, pb.Subscribed)]
    return reply, [b for b in out if isinstance(b, pb.Rescind)]


def test_a_new_subscription_attempt_rescinds_offers_the_scheduler_ignores():
    m = new_master()
    register_agent(m, A1)
    fid = subscribe_attempt(m, b"first", 0.0)[0].framework_id.value
    (offer,) = offers(m, 1.0, to=S1)
    # the driver lost the master and subscribes again: it ignores offers made before
    # the Subscribed of this attempt
    again, rescinds = subscribe_attempt(m, b"second", 2.0)
    assert again.framework_id.value == fid and again.session == b"second"
    assert m.offers == {}
    assert [r.offer_id for r in rescinds] == [offer.id]
    (fresh,) = offers(m, 2.0, to=S1)
    assert fresh.id != offer.id


def test_a_retried_subscribe_of_the_same_attempt_keeps_the_offers_valid():
    # the driver retried before our Subscribed reached it: it takes the first answer and
    # may already be launching on the offer that followed it
    m = new_master()
    a1 = register_agent(m, A1)
    fid = subscribe_attempt(m, b"one", 0.0)[0].framework_id.value
    (offer,) = offers(m, 1.0, to=S1)
    reply, rescinds = subscribe_attempt(m, b"one", 1.01)
    assert reply.framework_id.value == fid and rescinds == []
    assert set(m.offers) == {offer.id.value}
    launch(m, fid, offer, command_task("t1", a1, "cpus:1;mem:128"), now=1.02)
    assert [b.task.task_id.value for b in bodies(m, pb.RunTask, to=A1)] == ["t1"]


# ------------------------------------------------------------------- allocation
def test_offers_go_to_the_framework_with_the_lowest_share():
    m = new_master()
    a1 = register_agent(m, A1)
    f1 = subscribe(m, S1)
    (offer,) = offers(m, 1.0)
    assert offer.framework_id.value == f1
    launch(m, f1, offer, command_task("t1", a1, "cpus:2;mem:2048"))
    sent(m)
    register_agent(m, A2)
    f2 = subscribe(m, S2)
    got = offers(m, 3.0)
    # f1 holds 50% of agent1; f2 nothing: agent1's rest and all of agent2 are handed out
    # one agent at a time, each to the framework with the lower share at that point
    assert [o.framework_id.value for o in got] == [f2, f1]


def test_decline_filter_holds_until_refuse_seconds_expire():
    m = new_master()
    register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0)
    feed(m, S1, pb.Decline(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id],
                           filters=pb.Filters(refuse_seconds=10.0)), 1.5)
    assert offers(m, 2.0) == []
    assert offers(m, 11.0) == []  # expires at 11.5
    assert len(offers(m, 12.0)) == 1


def test_revive_clears_filters():
    m = new_master()
    register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0)
    feed(m, S1, pb.Decline(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id],
                           filters=pb.Filters(refuse_seconds=1000.0)), 1.5)
    assert offers(m, 2.0) == []
    feed(m, S1, pb.Revive(framework_id=pb.FrameworkID(value=fid)), 2.5)
    assert len(offers(m, 2.5)) == 1


def test_suppress_stops_offers_until_revive():
    m = new_master()
    register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0)
    feed(m, S1, pb.Suppress(framework_id=pb.FrameworkID(value=fid)), 1.2)
    feed(m, S1, pb.Decline(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id],
                           filters=pb.Filters(refuse_seconds=0.0)), 1.5)
    assert offers(m, 2.0) == [] and offers(m, 30.0) == []
    feed(m, S1, pb.Revive(framework_id=pb.FrameworkID(value=fid)), 31.0)
    assert len(offers(m, 31.0)) == 1


# ---------------------------------------------------------------------- accept
@pytest.mark.parametrize("aware, expected", [(False, pb.TASK_LOST), (True, pb.TASK_DROPPED)])
def test_accept_of_an_unknown_offer(aware, expected):
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1, partition_aware=aware)
    feed(m, S1, accept(fid, ["no-such-offer"], [command_task("t1", aid)]), 1.0)
    (update,) = updates_to(m, S1)
    assert update.status.state == expected
    assert update.status.reason == R.REASON_INVALID_OFFERS
    assert update.status.source == R.SOURCE_MASTER and not update.status.HasField("uuid")
    assert not bodies(m, pb.RunTask)


def test_duplicate_task_ids_in_one_launch(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid), command_task("t1", aid))
    out = sent(m)
    runs = [b for _, b in out if isinstance(b, pb.RunTask)]
    errors = [x.status for _, b in out if isinstance(b, wire.Updates) for x in updates_in(b)]
    assert len(runs) == 1
    (status,) = errors
    assert status.task_id.value == "t1" and status.state == pb.TASK_ERROR
    assert status.reason == R.REASON_TASK_INVALID


def test_task_beyond_the_offer_is_an_error_and_unused_resources_are_returned(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("big", aid, "cpus:5;mem:128"), command_task("ok", aid, "cpus:1;mem:128"),
           now=2.0)
    out = sent(m)
    (status,) = [x.status for _, b in out if isinstance(b, wire.Updates) for x in updates_in(b)]
    assert status.task_id.value == "big" and status.state == pb.TASK_ERROR
    assert status.reason == R.REASON_TASK_INVALID
    assert [b.task.task_id.value for _, b in out if isinstance(b, pb.RunTask)] == ["ok"]
    agent = m.agents[aid]
    assert agent.used.cpus == 1 and agent.offered.cpus == 0
    # the unused 3 cpus are filtered for the default 5 s, then offered again
    assert offers(m, 3.0) == []
    (again,) = offers(m, 7.5)
    assert again.framework_id.value == fid and pytest.approx(3.0) == sum(
        r.scalar.value for r in again.resources if r.name == "cpus")


# -------------------------------------------------------------- status updates
def test_status_update_is_relayed_with_head_and_latest_state(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid))
    sent(m)
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_RUNNING, b"u1", latest=pb.TASK_FINISHED), 3.0)
    (update,) = updates_to(m, S1)
    assert update.status.state == pb.TASK_RUNNING and update.uuid == b"u1"
    task = m.frameworks[fid].tasks["t1"]
    assert task.status_update_state == pb.TASK_RUNNING
    assert task.state == pb.TASK_FINISHED
    # latest is terminal: resources are free, though the task is remembered
    assert not m.agents[aid].used and not m.allocator.allocated(fid)


def test_a_message_whose_rows_all_go_to_one_framework_is_relayed_as_it_came(cluster):
    """No decoding twice over: the master sends the bytes the agent sent when it relays
    every row to one framework, and encodes the rows it keeps when it does not."""
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid), command_task("t2", aid))
    sent(m)
    both = wire.StatusUpdateMessage(status_update(fid, aid, "t1", pb.TASK_RUNNING, b"u1").rows
                                    + status_update(fid, aid, "t2", pb.TASK_RUNNING, b"v1").rows)
    data = both.SerializeToString()
    m.handle(A1, wire.StatusUpdateMessage.FromString(data), 3.0)
    (action,) = [a for a in m.take_actions() if isinstance(getattr(a, "body", None), wire.Updates)]
    assert action.body.SerializeToString() is data
    assert [u.status.task_id.value for u in updates_in(action.body)] == ["t1", "t2"]
    # a row the framework does not get (a retry of an update it acknowledged) is left out
    feed(m, S1, wire.Acknowledge(fid, [(aid, "t1", b"u1")]), 3.1)
    sent(m)
    m.handle(A1, wire.StatusUpdateMessage.FromString(data), 3.2)
    (relayed,) = bodies(m, wire.Updates, to=S1)
    assert [u.status.task_id.value for u in updates_in(relayed)] == ["t2"]


def test_task_is_forgotten_only_when_its_terminal_update_is_acked(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid))
    sent(m)
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_RUNNING, b"u1", latest=pb.TASK_FINISHED), 3.0)
    ack = wire.Acknowledge(fid, [(aid, "t1", b"u1")])
    feed(m, S1, ack, 3.1)
    (forward,) = bodies(m, wire.StatusUpdateAck, to=A1)
    assert forward.rows[0][2] == b"u1"
    assert "t1" in m.frameworks[fid].tasks  # head (RUNNING) acked, FINISHED not yet
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_FINISHED, b"u2", latest=pb.TASK_FINISHED), 3.2)
    sent(m)
    assert "t1" in m.frameworks[fid].tasks
    ack.rows[0] = (*ack.rows[0][:2], b"u2")
    feed(m, S1, ack, 3.3)
    assert "t1" not in m.frameworks[fid].tasks
    assert [t.id for t in m.frameworks[fid].completed] == ["t1"]


def test_a_task_id_is_free_again_only_once_its_terminal_update_is_acknowledged(cluster):
    """As in Mesos, a finished task keeps its id until the framework acknowledged its
    terminal update: a launch with that id before then is a TASK_ERROR."""
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid))
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_FINISHED, b"end", latest=pb.TASK_FINISHED), 3.0)
    sent(m)
    (again,) = offers(m, 4.0, to=S1)
    launch(m, fid, again, command_task("t1", aid), now=4.5)
    out = sent(m)
    (status,) = [x.status for _, b in out if isinstance(b, wire.Updates) for x in updates_in(b)]
    assert status.state == pb.TASK_ERROR and "not acknowledged yet" in status.message
    assert not [b for _, b in out if isinstance(b, pb.RunTask)]
    feed(m, S1, wire.Acknowledge(fid, [(aid, "t1", b"end")]), 5.0)
    (again,) = offers(m, 11.0, to=S1)  # (after the default 5 s filter on what the failed launch left)
    launch(m, fid, again, command_task("t1", aid), now=11.5)
    assert [b.task.task_id.value for b in bodies(m, pb.RunTask, to=A1)] == ["t1"]


def test_two_agents_reporting_one_task_id_keep_their_updates_and_acks_apart(cluster):
    """A task id can be on two agents at once after a failover (an agent reregisters with
    a task of an id the master has on another agent, whose terminal update is not
    acknowledged yet): each agent's updates are its own task's, and the ack of the
    first agent's terminal update reaches that agent and forgets only its task."""
    m, a1, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", a1))
    feed(m, A1, status_update(fid, a1, "t1", pb.TASK_FINISHED, b"old", latest=pb.TASK_FINISHED), 3.0)
    sent(m)
    a2 = register_agent(m, A2, now=3.0)
    report = pb.TaskReport(task=command_task("t1", a2), state=pb.TASK_RUNNING)
    report.framework_id.value = fid
    info = pb.AgentInfo(hostname=A2, id=pb.AgentID(value=a2), resources=resources("cpus:4;mem:4096"))
    feed(m, A2, pb.ReregisterAgent(agent=info, tasks=[report]), 4.0)
    sent(m)
    old = m.agents[a1].tasks[(fid, "t1")]
    new = m.agents[a2].tasks[(fid, "t1")]
    assert new is not old and m.frameworks[fid].tasks["t1"] is new
    feed(m, A2, status_update(fid, a2, "t1", pb.TASK_RUNNING, b"new"), 5.0)
    feed(m, A1, status_update(fid, a1, "t1", pb.TASK_FINISHED, b"old", latest=pb.TASK_FINISHED), 5.1)
    assert [(u.agent_id.value, u.uuid) for u in updates_to(m, S1)] == [(a2, b"new"), (a1, b"old")]
    assert (new.status_update_uuid, new.state) == (b"new", pb.TASK_RUNNING)
    assert (old.status_update_uuid, old.state) == (b"old", pb.TASK_FINISHED)
    assert m.counters["invalid_status_updates"] == 0
    feed(m, S1, wire.Acknowledge(fid, [(a1, "t1", b"old")]), 5.2)
    (forward,) = bodies(m, wire.StatusUpdateAck, to=A1)
    assert forward.rows == [(fid, "t1", b"old")]
    assert m.counters["invalid_acknowledgements"] == 0
    assert (fid, "t1") not in m.agents[a1].tasks
    assert m.frameworks[fid].tasks["t1"] is new and m.agents[a2].tasks[(fid, "t1")] is new


def test_kill_of_an_unknown_task_is_answered_lost():
    m = new_master()
    fid = subscribe(m, S1)
    feed(m, S1, pb.Kill(framework_id=pb.FrameworkID(value=fid), task_id=pb.TaskID(value="ghost")), 1.0)
    (update,) = updates_to(m, S1)
    assert update.status.state == pb.TASK_LOST and update.status.task_id.value == "ghost"
    assert not update.status.HasField("uuid")


def test_kill_of_a_known_task_goes_to_its_agent(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid))
    sent(m)
    feed(m, S1, pb.Kill(framework_id=pb.FrameworkID(value=fid), task_id=pb.TaskID(value="t1")), 3.0)
    (kill,) = bodies(m, pb.KillTask, to=A1)
    assert kill.task_id.value == "t1"


# -------------------------------------------------------------- reconciliation
def reconcile(m, fid, *entries, now=5.0):
    msg = pb.Reconcile(framework_id=pb.FrameworkID(value=fid))
    for tid, agent_id in entries:
        entry = msg.tasks.add(task_id=pb.TaskID(value=tid))
        if agent_id:
            entry.agent_id.value = agent_id
    feed(m, S1, msg, now)
    return {u.status.task_id.value: u.status for u in updates_to(m, S1)}


@pytest.mark.parametrize("aware", [False, True])
def test_reconciliation_answers(cluster, aware):
    m, aid, _, offer = cluster
    fid = m.frameworks[offer.framework_id.value].id
    if aware:
        m.frameworks[fid].info.capabilities.add(type=pb.FrameworkInfo.Capability.PARTITION_AWARE)
    launch(m, fid, offer, command_task("known", aid))
    feed(m, A1, status_update(fid, aid, "known", pb.TASK_RUNNING, b"u1"), 3.0)
    sent(m)
    a2 = register_agent(m, A2, now=3.0)
    m.agents[a2].state = AgentState.UNREACHABLE
    answers = reconcile(m, fid, ("known", aid), ("gone", aid), ("behind-partition", a2), ("nowhere", "no-agent"),
                        ("no-agent-named", None))
    expect = {
        "known": pb.TASK_RUNNING,
        "gone": pb.TASK_GONE if aware else pb.TASK_LOST,
        "behind-partition": pb.TASK_UNREACHABLE if aware else pb.TASK_LOST,
        "nowhere": pb.TASK_UNKNOWN if aware else pb.TASK_LOST,
        "no-agent-named": pb.TASK_UNKNOWN if aware else pb.TASK_LOST,
    }
    assert {k: s.state for k, s in answers.items()} == expect
    for status in answers.values():
        assert status.reason == R.REASON_RECONCILIATION and status.source == R.SOURCE_MASTER
        assert not status.HasField("uuid")


def test_reconcile_answers_are_packed_into_updates_messages(cluster, monkeypatch):
    monkeypatch.setattr(master_reconciliation, "ANSWERS_PER_MESSAGE", 2)
    m, aid, fid, offer = cluster
    launch(m, fid, offer, *[command_task(f"t{i}", aid, "cpus:0.1;mem:1") for i in range(3)])
    sent(m)
    msg = pb.Reconcile(framework_id=pb.FrameworkID(value=fid))
    for tid in ("t0", "t1", "t2", "unknown"):
        msg.tasks.add(task_id=pb.TaskID(value=tid), agent_id=pb.AgentID(value=aid))
    feed(m, S1, msg, 3.0)
    packs = bodies(m, wire.Updates, to=S1)
    assert [[u.status.task_id.value for u in updates_in(p)] for p in packs] == [["t0", "t1"], ["t2", "unknown"]]
    assert [u.status.state for p in packs for u in updates_in(p)] == [pb.TASK_STAGING] * 3 + [pb.TASK_LOST]
    feed(m, S1, pb.Reconcile(framework_id=pb.FrameworkID(value=fid)), 4.0)  # implicit: the three known
    assert [len(p.rows) for p in bodies(m, wire.Updates, to=S1)] == [2, 1]


def test_reconciliation_answers_the_head_state_not_the_latest(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid))
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_RUNNING, b"u1", latest=pb.TASK_FAILED), 3.0)
    sent(m)
    assert reconcile(m, fid, ("t1", aid))["t1"].state == pb.TASK_RUNNING


def test_implicit_reconciliation_answers_every_known_task(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid), command_task("t2", aid))
    sent(m)
    answers = reconcile(m, fid)
    assert {k: s.state for k, s in answers.items()} == {"t1": pb.TASK_STAGING, "t2": pb.TASK_STAGING}


# -------------------------------------------------------------------- liveness
def test_agent_unreachable_after_max_missed_pongs(cluster):
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid, "cpus:1;mem:128"))
    sent(m)
    (offer2,) = offers(m, 8.0)  # the rest of the agent, offered again after the filter
    pings = 0
    now = 0.0
    while m.agents[aid].state is AgentState.REGISTERED:
        now += m.config.ping_interval
        m.tick(now)
        out = sent(m)
        pings += sum(isinstance(b, pb.Ping) for _, b in out)
        assert now <= 10 * m.config.ping_interval
    assert pings == m.config.max_missed_pongs
    rescinds = [b for to, b in out if isinstance(b, pb.Rescind)]
    assert [r.offer_id.value for r in rescinds] == [offer2.id.value]
    (update,) = [x.status for to, b in out if isinstance(b, wire.Updates) for x in updates_in(b)]
    assert update.task_id.value == "t1" and update.state == pb.TASK_LOST
    assert update.reason == R.REASON_AGENT_DISCONNECTED
    assert m.offers == {}


def test_pongs_keep_an_agent_registered():
    m = new_master()
    aid = register_agent(m, A1)
    for i in range(1, 20):
        m.tick(i * m.config.ping_interval)
        sent(m)
        feed(m, A1, pb.Pong(agent_id=pb.AgentID(value=aid)), i * m.config.ping_interval + 0.1)
    assert m.agents[aid].state is AgentState.REGISTERED


def test_framework_removed_after_failover_timeout_and_its_tasks_killed(cluster):
    m, aid, fid, offer = cluster
    m.frameworks[fid].info.failover_timeout = 30.0
    launch(m, fid, offer, command_task("t1", aid))
    sent(m)
    feed(m, S1, pb.Deactivate(framework_id=pb.FrameworkID(value=fid)), 3.0)
    sent(m)
    m.tick(32.9)
    assert fid in m.frameworks
    assert not bodies(m, pb.ShutdownFramework)
    m.tick(33.0)
    (shutdown,) = bodies(m, pb.ShutdownFramework, to=A1)
    assert shutdown.framework_id.value == fid
    assert fid not in m.frameworks
    assert not m.agents[aid].used and not m.agents[aid].tasks


def test_failover_within_the_timeout_keeps_the_framework(cluster):
    m, aid, fid, offer = cluster
    m.frameworks[fid].info.failover_timeout = 30.0
    launch(m, fid, offer, command_task("t1", aid))
    feed(m, S1, pb.Deactivate(framework_id=pb.FrameworkID(value=fid)), 3.0)
    feed(m, S2, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw", id=pb.FrameworkID(value=fid),
                                                              failover_timeout=30.0), transport=S2), 10.0)
    sent(m)
    m.tick(100.0)
    assert not bodies(m, pb.ShutdownFramework)
    assert "t1" in m.frameworks[fid].tasks


def test_retry_of_a_forgotten_tasks_terminal_update_is_relayed_and_its_ack_forwarded(cluster):
    """The master forgot the task when the scheduler acked FINISHED; the ack to the agent
    was lost, so the agent retries: the retry must still reach the scheduler and the
    scheduler's re-ack must still reach the agent, or the agent retries forever."""
    m, aid, fid, offer = cluster
    launch(m, fid, offer, command_task("t1", aid))
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_FINISHED, b"u1"), 3.0)
    ack = wire.Acknowledge(fid, [(aid, "t1", b"u1")])
    feed(m, S1, ack, 3.1)
    sent(m)
    assert "t1" not in m.frameworks[fid].tasks
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_FINISHED, b"u1"), 13.0)
    (retry,) = updates_to(m, S1)
    assert retry.uuid == b"u1" and retry.status.state == pb.TASK_FINISHED
    feed(m, S1, ack, 13.1)
    (forward,) = bodies(m, wire.StatusUpdateAck, to=A1)
    assert forward.rows[0][2] == b"u1" and forward.rows[0][1] == "t1"


def test_retried_registration_is_answered_again_without_resending_launches():
    """A retried RegisterAgent (our reply was lost or is late) gets the reply again, and
    nothing else: launches are sent once (the agent runs those that reach it before its
    first reply once that reply arrives), since a resent launch can reach the agent after
    the task ended and run it again."""
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0)
    launch(m, fid, offer, command_task("t1", aid), command_task("t2", aid))
    assert len(bodies(m, pb.RunTask, to=A1)) == 2
    feed(m, A1, pb.RegisterAgent(agent=pb.AgentInfo(hostname=A1, resources=resources("cpus:4;mem:4096"))), 3.0)
    out = sent(m, to=A1)
    assert [type(b) for _, b in out] == [pb.AgentRegistered]
    assert out[0][1].agent_id.value == aid


# ------------------------------------------------------------- connection events
def test_framework_connection_drop_disconnects_it_and_starts_its_failover_timeout(cluster):
    m, aid, fid, offer = cluster
    m.frameworks[fid].info.failover_timeout = 30.0
    m.peer_event(S1, PeerEvent.DISCONNECTED, 3.0)
    assert not m.frameworks[fid].connected
    assert m.offers == {}  # its offers are rescinded
    m.tick(32.0)
    assert fid in m.frameworks
    m.tick(33.5)
    assert fid not in m.frameworks


def test_agent_connection_drop_stops_its_offers_until_it_reregisters(cluster):
    m, aid, fid, offer = cluster
    m.peer_event(A1, PeerEvent.DISCONNECTED, 3.0)
    assert m.agents[aid].state is AgentState.DISCONNECTED
    assert m.offers == {}
    assert offers(m, 20.0) == []
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value=aid), resources=resources("cpus:4;mem:4096"))
    feed(m, A1, pb.ReregisterAgent(agent=info), 21.0)
    assert m.agents[aid].state is AgentState.REGISTERED
    assert len(offers(m, 22.0)) == 1


@pytest.mark.parametrize(("aware", "first"), [(True, pb.TASK_UNREACHABLE), (False, pb.TASK_LOST)])
def test_agent_back_from_unreachable_reports_its_tasks_with_reason_agent_reregistered(aware, first):
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1, partition_aware=aware)
    (offer,) = offers(m, 1.0, to=S1)
    launch(m, fid, offer, command_task("t1", aid, "cpus:1;mem:128"))
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_RUNNING, b"u" * 16), 3.0)
    sent(m)
    now = 3.0
    while m.agents[aid].state is not AgentState.UNREACHABLE:
        now += m.config.ping_interval
        m.tick(now)
    assert [u.status.state for u in updates_to(m, S1)] == [first]
    report = pb.TaskReport(task=command_task("t1", aid, "cpus:1;mem:128"), state=pb.TASK_RUNNING)
    report.framework_id.value = fid
    report.task.agent_id.value = aid
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value=aid), resources=resources("cpus:4;mem:4096"))
    feed(m, A1, pb.ReregisterAgent(agent=info, tasks=[report]), now + 1)
    (back,) = updates_to(m, S1)
    assert back.status.state == pb.TASK_RUNNING
    assert back.status.reason == R.REASON_AGENT_REREGISTERED


def test_offers_of_agents_with_the_same_port_ranges_are_released_independently():
    m = new_master()
    a1 = register_agent(m, A1, res="cpus:2;mem:1024;ports:[31000-31100]")
    a2 = register_agent(m, A2, res="cpus:2;mem:1024;ports:[31000-31100]")
    fid = subscribe(m, S1)
    got = offers(m, 1.0, to=S1)
    assert sorted(o.agent_id.value for o in got) == sorted([a1, a2])
    for offer in got:
        feed(m, S1, pb.Decline(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id]), 2.0)
    assert m.offers == {} and m.allocator.allocated(fid) == {}
    assert not m.agents[a1].offered and not m.agents[a2].offered


def test_a_fresh_agent_at_a_known_address_gets_a_new_id_and_the_old_tasks_are_gone():
    m = new_master()
    info = pb.AgentInfo(hostname="h", resources=resources("cpus:4;mem:4096"))
    feed(m, A1, pb.RegisterAgent(agent=info, session=b"first"), 0.0)
    (reply,) = bodies(m, pb.AgentRegistered, to=A1)
    old = reply.agent_id.value
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    launch(m, fid, offer, command_task("t1", old, "cpus:1;mem:128"))
    sent(m)
    feed(m, A1, pb.RegisterAgent(agent=info, session=b"first"), 2.0)  # a retry: same id
    assert [r.agent_id.value for r in bodies(m, pb.AgentRegistered, to=A1)] == [old]
    feed(m, A1, pb.RegisterAgent(agent=info, session=b"second"), 3.0)  # a new agent process
    out = sent(m)
    (reply,) = [b for to, b in out if to == A1 and isinstance(b, pb.AgentRegistered)]
    assert reply.agent_id.value != old and old not in m.agents
    (gone,) = [x.status for to, b in out if to == S1 and isinstance(b, wire.Updates) for x in updates_in(b)]
    assert gone.task_id.value == "t1" and gone.state == pb.TASK_LOST  # GONE for partition-aware frameworks
    assert gone.reason == R.REASON_AGENT_RESTARTED


def test_offers_outstanding_past_the_offer_timeout_are_rescinded():
    m = new_master(offer_timeout=10.0)
    register_agent(m, A1)
    subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)  # made at once (t=0), when the framework subscribed
    m.tick(9.5)
    assert bodies(m, pb.Rescind, to=S1) == []
    m.tick(10.0)
    (rescind,) = bodies(m, pb.Rescind, to=S1)
    assert rescind.offer_id == offer.id
