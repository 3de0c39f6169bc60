"""SchedulerEngine: subscription with backoff, de-duplication by uuid, implicit and
explicit acknowledgements, master-generated updates, fatal errors."""
from __future__ import annotations

import random

import pytest

from corral.net import wire
from corral.engines.base import Callback
from corral.engines.scheduler import (Abort, SchedulerConfig, SchedulerEngine, SchedulerEvent, SchedulerTimer,
                                     Subscription)
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb

from engine_helpers import MASTER, bodies, feed, framework_info, others, sent, status_update
from engine_helpers import updates_in, wire_updates

ME = "tcp://sched"
FID, AID = "fw1", "agent-1"


def new_scheduler(**config) -> SchedulerEngine:
    return SchedulerEngine(framework_info(), ME, SchedulerConfig(**config), random.Random(3))


def reply_to(subscribe: pb.Subscribe) -> pb.Subscribed:
    """The master's answer to `subscribe`."""
    return pb.Subscribed(framework_id=pb.FrameworkID(value=FID), session=subscribe.session,
                         master_info=pb.MasterInfo(id="m1", hostname="m", port=5050, transport=MASTER))


def subscribed(**config) -> SchedulerEngine:
    s = new_scheduler(**config)
    s.connect(MASTER, 0.0)
    (subscribe,) = bodies(s, pb.Subscribe, to=MASTER)
    feed(s, MASTER, reply_to(subscribe), 0.5)
    (cb,) = others(s.take_actions(), Callback)
    assert cb.event is SchedulerEvent.REGISTERED
    return s


def test_offers_that_overtake_the_subscribed_are_declined_not_kept():
    s = new_scheduler()
    s.connect(MASTER, 0.0)
    (subscribe,) = bodies(s, pb.Subscribe, to=MASTER)
    early = pb.Offer(id=pb.OfferID(value="o1"), framework_id=pb.FrameworkID(value=FID),
                     agent_id=pb.AgentID(value=AID), hostname="h")
    feed(s, MASTER, pb.Offers(offers=[early]), 0.1)
    (decline,) = bodies(s, pb.Decline, to=MASTER)
    assert [o.value for o in decline.offer_ids] == ["o1"] and decline.framework_id.value == FID
    assert decline.filters.refuse_seconds == 0.0  # offered again at once
    feed(s, MASTER, reply_to(subscribe), 0.2)
    assert not [c for c in others(s.take_actions(), Callback) if c.event is SchedulerEvent.RESOURCE_OFFERS]
    # offers from elsewhere are neither used nor answered
    feed(s, "tcp://other-master", pb.Offers(offers=[early]), 0.3)
    assert bodies(s, pb.Decline) == []


def pb_update(state: int, uuid: bytes | None, tid: str = "t1") -> pb.StatusUpdate:
    (update,) = updates_in(status_update(FID, AID, tid, state, uuid or b""))
    if uuid is None:
        update.ClearField("uuid")
        update.status.ClearField("uuid")
        update.status.source = pb.TaskStatus.SOURCE_MASTER
    return update


def update(state: int, uuid: bytes | None, tid: str = "t1") -> wire.Updates:
    return wire_updates(wire.Updates, pb_update(state, uuid, tid))


def status_callbacks(actions) -> list[pb.TaskStatus]:
    return [c.args[0] for c in others(actions, Callback) if c.event is SchedulerEvent.STATUS_UPDATE]


def test_subscribe_is_retried_with_growing_randomised_backoff_until_subscribed():
    s = new_scheduler(registration_backoff=2.0, registration_backoff_max=60.0)
    s.connect(MASTER, 0.0)
    attempts = bodies(s, pb.Subscribe, to=MASTER)
    times = [0.0] if attempts else []
    while len(times) < 12:
        now = s.next_deadline()
        s.tick(now)
        retry = bodies(s, pb.Subscribe, to=MASTER)
        if retry:
            times.append(now)
            attempts += retry
    gaps = [b - a for a, b in zip(times, times[1:])]
    for n, gap in enumerate(gaps):
        assert 0.0 <= gap <= min(2.0 * 2 ** n, 60.0), (n, gap)
    assert max(gaps[6:]) > 8.0
    assert len({a.session for a in attempts}) == 1  # retries of one attempt
    feed(s, MASTER, reply_to(attempts[0]), times[-1] + 0.1)
    assert s.subscription is Subscription.SUBSCRIBED
    assert not s.has_timer(SchedulerTimer.SUBSCRIBE)  # no more retries (only reconciliation is scheduled)


def test_events_before_subscribed_are_ignored():
    s = new_scheduler()
    s.connect(MASTER, 0.0)
    sent(s)
    offer = pb.Offer(id=pb.OfferID(value="o1"), framework_id=pb.FrameworkID(value="x"),
                     agent_id=pb.AgentID(value=AID), hostname="h")
    feed(s, MASTER, pb.Offers(offers=[offer]), 0.1)
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1"), 0.2)
    assert not others(s.take_actions(), Callback)


def test_each_uuid_is_delivered_once_and_a_duplicate_is_acked_again():
    s = subscribed()
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1"), 1.0)
    (status,) = status_callbacks(s.take_actions())
    s.acknowledge(status)
    (ack,) = bodies(s, wire.Acknowledge, to=MASTER)
    assert ack.rows == [(AID, "t1", b"u1")]
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1"), 11.0)  # our ack was lost: the agent retried
    actions = s.take_actions()
    assert status_callbacks(actions) == []
    assert [a.body.rows[0][2] for a in actions if hasattr(a, "body") and isinstance(a.body, wire.Acknowledge)] == [b"u1"]
    assert s.counters["duplicate_updates"] == 1


def test_a_status_callback_carries_the_row_that_acknowledges_it():
    """What the drivers acknowledge with once a callback returned: the same row an
    explicit acknowledgement of the status sends; none for the master's own updates."""
    s = subscribed()
    feed(s, MASTER, wire_updates(wire.Updates, pb_update(pb.TASK_RUNNING, b"u1"), pb_update(pb.TASK_LOST, None, "t2"),
                                 pb_update(pb.TASK_FINISHED, b"u3", "t3")), 1.0)
    callbacks = [c for c in others(s.take_actions(), Callback) if c.event is SchedulerEvent.STATUS_UPDATE]
    assert [c.ack for c in callbacks] == [(AID, "t1", b"u1"), None, (AID, "t3", b"u3")]
    s.acknowledge_delivered([callbacks[0].ack, callbacks[2].ack])
    implicit = [row for ack in bodies(s, wire.Acknowledge, to=MASTER) for row in ack.rows]
    s.acknowledge(callbacks[0].args[0])
    s.acknowledge(callbacks[2].args[0])
    assert [row for ack in bodies(s, wire.Acknowledge, to=MASTER) for row in ack.rows] == implicit
    assert s.counters["acks_sent"] == 4
    # a retry of an acknowledged update is acknowledged again, not delivered
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1"), 11.0)
    assert [ack.rows for ack in bodies(s, wire.Acknowledge, to=MASTER)] == [[(AID, "t1", b"u1")]]


def delivered_tids(s: SchedulerEngine) -> list[str]:
    return [st.task_id.value for st in status_callbacks(s.take_actions())]


def test_the_uuid_memory_of_a_task_keeps_its_latest_updates_only():
    """A long-running task's updates (health checks, progress) must not grow the
    driver's memory for ever: the uuids of the last `delivered_uuids_per_task` updates
    are remembered, enough for the retries an agent can still make."""
    s = subscribed(delivered_uuids_per_task=4)
    for i in range(10):
        feed(s, MASTER, update(pb.TASK_RUNNING, b"u%d" % i), 1.0 + i)
        assert len(s._delivered["t1"]) == min(i + 1, 4)
    assert delivered_tids(s) == ["t1"] * 10
    assert list(s._delivered["t1"]) == [b"u%d" % i for i in range(6, 10)]
    for i in (6, 9):  # retries of recent updates: still recognised
        feed(s, MASTER, update(pb.TASK_RUNNING, b"u%d" % i), 20.0)
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u5"), 20.0)  # forgotten: delivered again
    assert delivered_tids(s) == ["t1"] and s.counters["duplicate_updates"] == 2


@pytest.mark.parametrize("remembered", [0, 65])
def test_a_uuid_memory_the_driver_cannot_keep_is_refused(remembered):
    with pytest.raises(ValueError, match=f"not {remembered}"):
        new_scheduler(delivered_uuids_per_task=remembered)


def test_the_uuid_memory_of_completed_tasks_is_kept_for_the_last_ones_only():
    s = subscribed(completed_tasks_remembered=3)
    for n in range(5):
        feed(s, MASTER, update(pb.TASK_RUNNING, b"r%d" % n, tid=f"t{n}"), 1.0)
        feed(s, MASTER, update(pb.TASK_FINISHED, b"f%d" % n, tid=f"t{n}"), 2.0)
    assert sorted(s._delivered) == ["t2", "t3", "t4"]
    feed(s, MASTER, update(pb.TASK_FINISHED, b"f4", tid="t4"), 3.0)  # a recent terminal update, retried
    assert delivered_tids(s) == [f"t{n}" for n in range(5) for _ in range(2)]  # (the first ten, no more)
    assert s.counters["duplicate_updates"] == 1
    # a task id launched again after it completed keeps its memory while it runs
    s.reconciler.track("t2", AID, pb.TASK_STAGING, 4.0)
    for n in range(5, 8):
        feed(s, MASTER, update(pb.TASK_FINISHED, b"f%d" % n, tid=f"t{n}"), 5.0)
    assert "t2" in s._delivered and "t3" not in s._delivered


def test_duplicate_of_an_unacknowledged_update_is_neither_delivered_nor_acked():
    """Explicit acks: the framework has not acknowledged yet; the driver must not do it."""
    s = subscribed(implicit_acknowledgements=False)
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1"), 1.0)
    (status,) = status_callbacks(s.take_actions())
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1"), 11.0)
    assert s.take_actions() == []
    s.acknowledge(status)  # explicit, when the framework is ready
    (ack,) = bodies(s, wire.Acknowledge, to=MASTER)
    assert ack.rows[0][2] == b"u1"


def test_master_generated_updates_are_never_acked():
    s = subscribed()
    feed(s, MASTER, update(pb.TASK_LOST, None), 1.0)
    (status,) = status_callbacks(s.take_actions())
    assert status.state == pb.TASK_LOST
    s.acknowledge(status)
    assert not bodies(s, wire.Acknowledge)
    # each master answer is delivered (no uuid to de-duplicate on)
    feed(s, MASTER, update(pb.TASK_LOST, None), 2.0)
    assert len(status_callbacks(s.take_actions())) == 1


def test_fatal_error_aborts_and_stops_everything():
    s = subscribed()
    feed(s, MASTER, pb.Error(message="framework failed over", fatal=True), 1.0)
    actions = s.take_actions()
    assert [c.event for c in others(actions, Callback)] == [SchedulerEvent.ERROR]
    assert others(actions, Abort)
    assert s.subscription is Subscription.FAILED
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1"), 2.0)
    assert s.take_actions() == []


def test_non_fatal_error_does_not_abort():
    s = subscribed()
    feed(s, MASTER, pb.Error(message="operation not supported"), 1.0)
    actions = s.take_actions()
    assert not others(actions, Abort)
    assert s.subscription is Subscription.SUBSCRIBED


def test_packed_updates_are_delivered_one_by_one_with_the_same_deduplication():
    s = subscribed()
    feed(s, MASTER, update(pb.TASK_RUNNING, b"u1", tid="t1"), 1.0)
    s.take_actions()
    packed = wire_updates(wire.Updates, pb_update(pb.TASK_RUNNING, b"u1", tid="t1"),  # a duplicate
                          pb_update(pb.TASK_FINISHED, None, tid="t2"),
                          pb_update(pb.TASK_LOST, None, tid="t3"))
    feed(s, MASTER, packed, 2.0)
    assert [(st.task_id.value, st.state) for st in status_callbacks(s.take_actions())] == [
        ("t2", pb.TASK_FINISHED), ("t3", pb.TASK_LOST)]
    assert s.counters["duplicate_updates"] == 1
    feed(s, "tcp://not-the-master", packed, 3.0)
    assert not status_callbacks(s.take_actions())


def test_a_late_answer_to_a_subscription_made_before_the_master_was_lost_is_ignored():
    """(seeds 4795, 7886, 8121) The master answered the first Subscribe and crashed; its
    answer arrived late, after the driver had seen the master go and started a new
    attempt, and was taken for the answer to it: subscribed in its own eyes with a
    framework the restarted master had never heard of, the driver got no offers."""
    s = new_scheduler()
    s.connect(MASTER, 0.0)
    (first,) = bodies(s, pb.Subscribe, to=MASTER)
    s.peer_event(MASTER, PeerEvent.DISCONNECTED, 1.0)
    s.take_actions()
    s.connect(MASTER, 1.5)  # the leader found again (the same address: restarted)
    (second,) = bodies(s, pb.Subscribe, to=MASTER)
    assert second.session != first.session
    feed(s, MASTER, reply_to(first), 3.0)
    assert s.subscription is Subscription.SUBSCRIBING and s.has_timer(SchedulerTimer.SUBSCRIBE)
    feed(s, MASTER, reply_to(second), 8.0)
    assert s.subscription is Subscription.SUBSCRIBED
