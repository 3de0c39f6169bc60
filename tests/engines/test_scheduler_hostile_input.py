"""The scheduler engine fed hostile messages (see `hostile.py`) from its master and from
strangers: no handler may raise, and while it stays subscribed an update from the master
still reaches the framework once, with its acknowledgement sent back."""
from __future__ import annotations

import os

import pytest

from corral.net import wire
from corral.engines.base import Callback
from corral.engines.scheduler import SchedulerEvent, Subscription
from corral.protos import corral_pb2 as pb

from engine_helpers import MASTER, others, sent, status_update
from hostile import SEEDS, bombard
from test_scheduler_engine import AID, FID, subscribed

STRANGER = "tcp://stranger"


def _not_fatal(body) -> None:
    if type(body) is pb.Error:
        body.fatal = False  # (a fatal one ends the subscription, rightly: the rest would test nothing)


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_messages_neither_raise_nor_stop_deliveries(seed):
    s = subscribed()
    now = bombard(s, seed, [FID, AID, "t1", MASTER], [MASTER, MASTER, STRANGER], 1.0, adjust=_not_fatal)
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
