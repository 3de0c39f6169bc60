"""The scheduler engine fed hostile messages (see `hostile.py`) from its master and from
strangers: no handler may raise, and while it stays subscribed an update from the master
still reaches the framework once, with its acknowledgement sent back."""
from __future__ import annotations

import os
import random

import pytest

from corral import wire
from corral.engines.base import Callback
from corral.engines.scheduler import SchedulerEngine, SchedulerEvent, Subscription
from corral.protos import corral_pb2 as pb

from engine_helpers import MASTER, others, sent, status_update
from hostile import Hostile, protobuf_types
from test_scheduler_engine import AID, FID, subscribed

STRANGER = "tcp://stranger"
SEEDS = range(int(os.environ.get("CORRAL_HOSTILE_SEEDS", "200")))
MESSAGES_PER_SEED = 60


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_messages_neither_raise_nor_stop_deliveries(seed):
    s = subscribed()
    hostile = Hostile(random.Random(seed), [FID, AID, "t1", MASTER])
    rng = hostile.rng
    types = protobuf_types(SchedulerEngine)
    now = 1.0
    for n in range(MESSAGES_PER_SEED):
        cls = rng.choice(types)
        body = hostile.message(cls)
        if body is None:
            continue
        if cls is pb.Error:
            body.fatal = False  # (a fatal one ends the subscription, rightly: the rest would test nothing)
        sender = rng.choice([MASTER, MASTER, STRANGER])
        try:
            s.handle(sender, body, now)
            s.tick(now)
            s.take_actions()
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"seed {seed}, message {n}: {cls.__name__} from {sender} raised "
                                 f"{type(exc).__name__}: {exc}\n{body}") from exc
        now += rng.choice([0.01, 0.5, 2.0])
    if s.subscription is not Subscription.SUBSCRIBED or s.master != MASTER:
        return  # the master (really) ended or moved the subscription
    uuid = os.urandom(16)
    update = status_update(s.framework_id, AID, "fresh-task", pb.TASK_RUNNING, uuid)
    s.handle(s.master, wire.Updates.FromString(update.SerializeToString()), now)
    delivered = [c for c in others(s.take_actions(), Callback) if c.event is SchedulerEvent.STATUS_UPDATE]
    assert [c.args[0].uuid for c in delivered] == [uuid]
    s.acknowledge_delivered([c.ack for c in delivered])
    acks = [row for to, body in sent(s, wire.Acknowledge) if to == s.master for row in body.rows]
    assert (AID, "fresh-task", uuid) in acks
