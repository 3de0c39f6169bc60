"""The executor engine (the executor driver's logic) fed hostile messages (see
`hostile.py`) from its agent and from strangers: no handler may raise, and a status
update sent afterwards still goes to the agent and is settled by its ack."""
from __future__ import annotations

import os
import random

import pytest

from corral import wire
from corral.engines.executor import AllAcknowledged, ExecutorEngine
from corral.protos import corral_pb2 as pb

from engine_helpers import others, sent, updates_in
from hostile import Hostile, protobuf_types
from test_executor_engine import AGENT, AID, EID, FID, ack, registered, send

STRANGER = "tcp://stranger"
SEEDS = range(int(os.environ.get("CORRAL_HOSTILE_SEEDS", "200")))
MESSAGES_PER_SEED = 60


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_messages_neither_raise_nor_stop_updates(seed):
    e = registered()
    hostile = Hostile(random.Random(seed), [FID, EID, AID, "t1", AGENT])
    rng = hostile.rng
    types = protobuf_types(ExecutorEngine)
    now = 1.0
    for n in range(MESSAGES_PER_SEED):
        cls = rng.choice(types)
        body = hostile.message(cls)
        if body is None:
            continue
        sender = rng.choice([AGENT, STRANGER])
        try:
            e.handle(sender, body, now)
            e.tick(now)
            e.take_actions()
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"seed {seed}, message {n}: {cls.__name__} from {sender} raised "
                                 f"{type(exc).__name__}: {exc}\n{body}") from exc
        now += rng.choice([0.01, 0.5, 2.0])
    send(e, "fresh-task", pb.TASK_RUNNING, now)
    (update,) = [u for to, m in sent(e, wire.ExecutorStatusUpdate) if to == AGENT for u in updates_in(m)]
    assert update.status.task_id.value == "fresh-task"
    e.handle(AGENT, ack(update), now)
    assert e.unacknowledged() == 0 and others(e.take_actions(), AllAcknowledged)
