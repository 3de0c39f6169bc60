"""corral.net.wire: the status path's message classes keep protobuf's interface (FromString,
SerializeToString), carry rows, and turn malformed bytes into a DecodeError that names
the message."""
import pytest
from google.protobuf.message import DecodeError

from corral.net import wire
from corral.protos import corral_pb2 as pb

ROW = ("fw", "exec", "t1", pb.TASK_RUNNING, b"u" * 16, pb.TaskStatus(state=pb.TASK_RUNNING).SerializePartialToString(),
       wire.HEALTHY, pb.TASK_FINISHED)


@pytest.mark.parametrize("msg", [
    wire.ExecutorStatusUpdate([ROW]), wire.StatusUpdateMessage([ROW, ROW]), wire.Updates([]),
    wire.Acknowledge("fw", [("agent", "t1", b"u")]), wire.StatusUpdateAck("agent", [("fw", "t1", b"u")]),
    wire.ExecutorStatusUpdateAck("agent", "fw", [("t1", b"u"), ("t2", b"v")]),
])
def test_messages_survive_the_wire(msg):
    again = type(msg).FromString(msg.SerializeToString())
    assert again == msg and again is not msg
    assert type(msg).__name__ in repr(msg)


def test_the_bytes_are_the_protobuf_schemas():
    ack = wire.ExecutorStatusUpdateAck("agent", "fw", [("t1", b"u")])
    parsed = pb.ExecutorStatusUpdateAck.FromString(ack.SerializeToString())
    assert (parsed.agent_id, parsed.framework_id, list(parsed.task_ids), list(parsed.uuids)) == ("agent", "fw", ["t1"], [b"u"])
    cols = pb.StatusUpdateMessage.FromString(wire.StatusUpdateMessage([ROW]).SerializeToString()).updates
    assert (cols.task_ids[0], cols.healths[0], cols.latest_states[0]) == ("t1", wire.HEALTHY, pb.TASK_FINISHED)


@pytest.mark.parametrize(("cls", "data", "problem"), [
    (wire.StatusUpdateMessage, b"\x0a\x02\x1a\x00", "StatusUpdateMessage: the columns of a StatusColumns differ"),
    (wire.Updates, b"\x0a\x05", "Updates: field runs past the end"),
    (wire.Acknowledge, b"", "Acknowledge: field 1"),
    (wire.ExecutorStatusUpdateAck, b"\x0a\x01a", "ExecutorStatusUpdateAck: field 2"),
    (wire.StatusUpdateAck, b"\x0a\x01a\x1a\x01t", "StatusUpdateAck: the task ids and uuids differ"),
])
def test_malformed_bytes_raise_a_decode_error_naming_the_message(cls, data, problem):
    with pytest.raises(DecodeError, match=problem):
        cls.FromString(data)
