"""The executor engine (the executor driver's logic) fed hostile messages (see
`hostile.py`) from its agent and from strangers: no handler may raise, and a status
update sent afterwards still goes to the agent and is settled by its ack."""
from __future__ import annotations


import pytest

from corral.net import wire
from corral.engines.executor import AllAcknowledged
from corral.protos import corral_pb2 as pb

from engine_helpers import others, sent, updates_in
from hostile import SEEDS, bombard
from test_executor_engine import AGENT, AID, EID, FID, ack, registered, send

STRANGER = "tcp://stranger"


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_messages_neither_raise_nor_stop_updates(seed):
    e = registered()
    now = bombard(e, seed, [FID, EID, AID, "t1", AGENT], [AGENT, STRANGER], 1.0)
    send(e, "fresh-task", pb.TASK_RUNNING, now)
    (update,) = [u for to, m in sent(e, wire.ExecutorStatusUpdate) if to == AGENT for u in updates_in(m)]
    assert update.status.task_id.value == "fresh-task"
    e.handle(AGENT, ack(update), now)
    assert e.unacknowledged() == 0 and others(e.take_actions(), AllAcknowledged)
