"""How a Runtime carries out its engine's actions: in the order the engine emitted them,
except that the turn's messages leave together at the end, batched or not; a message
that fails to send is logged and the others still go."""
import logging

import pytest

from corral.net import wire
from corral.engines.base import Engine, Send
from corral.net.protocol import TYPE_NUMBER
from corral.runtime import Runtime
from corral.runtime.loop import NotActing


class Note:
    def __init__(self, text: str) -> None:
        self.text = text


class Quiet(Engine):
    """An engine that handles nothing: the test puts actions in its outbox."""


@pytest.fixture(params=[False, True], ids=["unbatched", "batched"])
def runtime(request):
    rt = Runtime(lambda _address: Quiet(), batch=request.param)
    yield rt
    rt.transport.close()


def recording(rt: Runtime, log: list) -> None:
    def send(to, type_number, data):
        log.append(("send", to, type_number, data))
        return True

    rt.transport.send = send
    rt.add_performers({Note: lambda note: log.append(("note", note.text))})


def test_the_turns_messages_leave_after_its_other_actions_in_their_own_order(runtime):
    log: list = []
    recording(runtime, log)
    first = wire.StatusUpdateAck("agent", [("fw", "t1", b"u1")])
    second = wire.Acknowledge("fw", [("agent", "t1", b"u1")])
    for action in (Send("tcp://a:1", first), Note("journal 1"), Send("tcp://b:2", second), Note("journal 2")):
        runtime.engine.emit(action)
    runtime._perform()
    assert log == [
        ("note", "journal 1"),
        ("note", "journal 2"),
        ("send", "tcp://a:1", TYPE_NUMBER[wire.StatusUpdateAck], first.SerializeToString()),
        ("send", "tcp://b:2", TYPE_NUMBER[wire.Acknowledge], second.SerializeToString()),
    ]
    log.clear()
    runtime._perform()  # the outbox was emptied: nothing is carried out twice
    assert log == []


def test_a_message_that_fails_to_send_is_logged_and_the_rest_still_go(runtime, caplog):
    sent = []

    def send(to, type_number, data):
        if to == "tcp://bad:1":
            raise ValueError("no such peer")
        sent.append(to)
        return True

    runtime.transport.send = send
    body = wire.Updates([])
    for to in ("tcp://a:1", "tcp://bad:1", "tcp://b:2"):
        runtime.engine.emit(Send(to, body))
    with caplog.at_level(logging.ERROR, logger="corral.runtime"):
        runtime._perform()
    assert sent == ["tcp://a:1", "tcp://b:2"]
    assert [r.getMessage() for r in caplog.records] == [f"sending a {TYPE_NUMBER[wire.Updates]} message to tcp://bad:1 failed"]


def test_sends_are_the_runtimes_own(runtime):
    with pytest.raises(ValueError, match="Send actions are the runtime's own"):
        runtime.add_performers({Send: lambda action: None})


def test_a_closed_gate_drops_the_turns_actions_and_ends_the_loop():
    acting = [True]
    rt = Runtime(lambda _address: Quiet(), acting=lambda: acting[0])
    log: list = []
    recording(rt, log)
    body = wire.Updates([])
    try:
        rt.engine.emit(Note("journal"))
        rt.engine.emit(Send("tcp://a:1", body))
        rt._perform()
        assert [entry[0] for entry in log] == ["note", "send"]
        log.clear()
        acting[0] = False  # e.g. the leader's lease ran out
        rt.engine.emit(Note("journal"))
        rt.engine.emit(Send("tcp://a:1", body))
        rt._perform()
        assert log == []
        rt.run()  # returns at once: the gate is closed
        assert rt.stopped.is_set()
    finally:
        rt.transport.close()


def test_a_gate_that_closes_while_the_turn_is_performed_keeps_its_messages_in():
    acting = [True]
    rt = Runtime(lambda _address: Quiet(), acting=lambda: acting[0])
    log: list = []
    recording(rt, log)
    # a registry write that fails ends the leadership: what was to be sent after it stays
    rt.add_performers({Note: lambda note: (log.append(("note", note.text)), acting.__setitem__(0, False))})
    try:
        rt.engine.emit(Note("registry write"))
        rt.engine.emit(Send("tcp://a:1", wire.Updates([])))
        rt._perform()
        assert log == [("note", "registry write")]
    finally:
        rt.transport.close()


def test_a_call_whose_actions_the_gate_dropped_is_not_reported_done():
    acting = [True]
    rt = Runtime(lambda _address: Quiet(), acting=lambda: acting[0])
    log: list = []
    recording(rt, log)
    # the registry write fails and ends the leadership: the operator's change is not done
    rt.add_performers({Note: lambda note: (log.append(("note", note.text)), acting.__setitem__(0, False))})
    rt.start()
    try:
        assert rt.call(lambda: "nothing to do") == "nothing to do"
        with pytest.raises(NotActing, match="set_weight"):
            def set_weight() -> str:
                rt.engine.emit(Note("registry write"))
                rt.engine.emit(Send("tcp://a:1", wire.Updates([])))
                return ""
            rt.call(set_weight)
        assert log == [("note", "registry write")]
        assert rt.join(5.0)
        with pytest.raises(NotActing, match="stopped before it ran"):
            rt.call(lambda: "too late", timeout=5.0)
    finally:
        rt.stop()
        rt.join(5.0)
