"""How engines put the status path's rows into messages (`Engine.send_row`): one row
per message without batching; with it, one message per kind and peer for a turn, cut
where another message to that peer comes between (so nothing overtakes anything) and
at BATCH_MAX_ROWS."""
from __future__ import annotations

import random

import pytest

from corral.net import wire
from corral.engines import base
from corral.engines.base import Engine, Send
from corral.engines.executor import ExecutorEngine, serialise_status
from corral.protos import corral_pb2 as pb

from engine_helpers import roundtrip, updates_in

A, B = "tcp://a:1", "tcp://b:1"
KIND = (wire.StatusUpdateAck, "agent-1")


def sends(engine: Engine) -> list[tuple[str, object]]:
    return [(a.to, a.body) for a in engine.take_actions() if isinstance(a, Send)]


def test_without_batching_every_row_is_a_message_of_its_own():
    engine = Engine()
    for i in range(3):
        engine.send_row(A, KIND, ("fw", f"t{i}", b"u"))
    assert [(to, body.rows) for to, body in sends(engine)] == [(A, [("fw", f"t{i}", b"u")]) for i in range(3)]


def test_with_batching_a_turn_sends_one_message_per_peer_and_kind():
    engine = Engine()
    engine.batch = True
    engine.send_row(A, KIND, ("fw", "t1", b"u1"))
    engine.send_row(B, KIND, ("fw", "t2", b"u2"))
    engine.send_row(A, KIND, ("fw", "t3", b"u3"))
    engine.send_row(A, (wire.StatusUpdateAck, "agent-2"), ("fw", "t4", b"u4"))  # another shared field: another message
    out = sends(engine)
    assert [(to, body.agent_id, body.rows) for to, body in out] == [
        (A, "agent-1", [("fw", "t1", b"u1"), ("fw", "t3", b"u3")]),
        (B, "agent-1", [("fw", "t2", b"u2")]),
        (A, "agent-2", [("fw", "t4", b"u4")]),
    ]
    assert all(roundtrip(body) == body for _, body in out)
    engine.send_row(A, KIND, ("fw", "t5", b"u5"))  # a new turn: a new message
    assert [(to, body.rows) for to, body in sends(engine)] == [(A, [("fw", "t5", b"u5")])]


def test_a_message_to_the_peer_in_between_closes_its_batch():
    engine = Engine()
    engine.batch = True
    engine.send_row(A, KIND, ("fw", "t1", b"u1"))
    engine.send(A, pb.Ping())
    engine.send_row(A, KIND, ("fw", "t2", b"u2"))
    out = sends(engine)
    assert [type(body).__name__ for _, body in out] == ["StatusUpdateAck", "Ping", "StatusUpdateAck"]
    assert [body.rows for _, body in out if isinstance(body, wire.StatusUpdateAck)] == [
        [("fw", "t1", b"u1")], [("fw", "t2", b"u2")]]


def test_a_batch_holds_at_most_batch_max_rows(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(base, "BATCH_MAX_ROWS", 2)
    engine = Engine()
    engine.batch = True
    for i in range(5):
        engine.send_row(A, KIND, ("fw", f"t{i}", b"u"))
    assert [len(body.rows) for _, body in sends(engine)] == [2, 2, 1]


def test_a_batching_executor_sends_the_heads_of_its_streams_in_one_message():
    executor = ExecutorEngine("fw", "exec", A, B, rng=random.Random(1))
    executor.batch = True
    for tid in ("t1", "t2", "t1", "t3"):  # the second update of t1 waits for the first's ack
        executor.send_status_update(serialise_status(pb.TaskStatus(task_id=pb.TaskID(value=tid), state=pb.TASK_RUNNING)), 1.0)
    (to, body), = sends(executor)
    assert to == A and isinstance(body, wire.ExecutorStatusUpdate)
    assert [u.status.task_id.value for u in updates_in(roundtrip(body))] == ["t1", "t2", "t3"]
    executor.handle(A, roundtrip(wire.ExecutorStatusUpdateAck("agent-1", "fw", [(r[2], r[4]) for r in body.rows])), 2.0)
    (to, body), = sends(executor)
    assert [r[2] for r in body.rows] == ["t1"] and executor.unacknowledged() == 1
