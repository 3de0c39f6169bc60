"""The executor driver's update stamping (corral.engines.executor._status.UpdateSource): the row it queues
and sends carries the user's status with our stamp, the time and a fresh uuid merged
in, exactly as protobuf parses them; only a stream's head comes back to send."""
import struct

import pytest

from corral._core.acks import AckResult, AckTracker
from corral._core.decoding import ColumnsError
from corral.engines.executor._status import UpdateSource
from corral.protos import corral_pb2 as pb

PREFIX = b"\x01\x02\x03\x04\x05\x06\x07\x08"
UUID_KEY = pb.TaskStatus(uuid=bytes(16)).SerializePartialToString()[:-16]
TIMESTAMP_KEY = pb.TaskStatus(timestamp=0.0).SerializePartialToString()[:-8]


def stamp(agent_id: str) -> bytes:
    status = pb.TaskStatus(source=pb.TaskStatus.SOURCE_EXECUTOR)
    status.executor_id.value = "ex-1"
    if agent_id:
        status.agent_id.value = agent_id
    return status.SerializePartialToString() + TIMESTAMP_KEY


def source(tracker: AckTracker) -> UpdateSource:
    return UpdateSource("fw-1", "ex-1", PREFIX, stamp("a-1"), UUID_KEY, tracker)


def status(tid: str, state: int = pb.TASK_RUNNING, **fields) -> bytes:
    msg = pb.TaskStatus(state=state, **fields)
    msg.task_id.value = tid
    return msg.SerializeToString()


def test_the_row_carries_the_status_stamped_with_our_ids_the_time_and_a_new_uuid():
    tracker = AckTracker(10.0, 600.0, remember=0)
    row = source(tracker).add(status("t-1", pb.TASK_FAILED, message="boom", healthy=False), 12.5)
    fid, eid, tid, state, uuid, data, health, latest = row
    assert (fid, eid, tid, state, health, latest) == ("fw-1", "ex-1", "t-1", pb.TASK_FAILED, 2, pb.TASK_FAILED)
    assert uuid == PREFIX + struct.pack(">Q", 0)
    parsed = pb.TaskStatus.FromString(data)
    assert parsed.task_id.value == "t-1" and parsed.message == "boom" and parsed.healthy is False
    assert parsed.source == pb.TaskStatus.SOURCE_EXECUTOR
    assert parsed.executor_id.value == "ex-1" and parsed.agent_id.value == "a-1"
    assert parsed.timestamp == 12.5 and parsed.uuid == uuid


def test_uuids_count_up_and_only_a_streams_head_is_returned():
    tracker = AckTracker(10.0, 600.0, remember=0)
    src = source(tracker)
    first = src.add(status("t-1"), 1.0)
    assert src.add(status("t-1", pb.TASK_FINISHED), 2.0) is None  # queued behind the head
    other = src.add(status("t-2"), 3.0)
    assert [first[4], other[4]] == [PREFIX + struct.pack(">Q", 0), PREFIX + struct.pack(">Q", 2)]
    assert len(tracker) == 3 and tracker.head("t-1") == (first[4], first)
    assert tracker.ack("t-1", first[4], 4.0) is AckResult.ACKED
    uuid, queued = tracker.head("t-1")
    assert uuid == PREFIX + struct.pack(">Q", 1) and queued[3] == pb.TASK_FINISHED
    assert pb.TaskStatus.FromString(queued[5]).timestamp == 2.0


def test_a_new_stamp_applies_to_the_updates_after_it():
    tracker = AckTracker(10.0, 600.0, remember=0)
    src = source(tracker)
    src.stamp = stamp("a-2")
    row = src.add(status("t-1", agent_id=pb.AgentID(value="user-said")), 1.0)
    assert pb.TaskStatus.FromString(row[5]).agent_id.value == "a-2"  # ours is appended: it wins


def test_bad_input_is_refused_and_nothing_is_queued():
    tracker = AckTracker(10.0, 600.0, remember=0)
    src = source(tracker)
    with pytest.raises(ColumnsError, match="task id"):
        src.add(pb.TaskStatus(state=pb.TASK_RUNNING).SerializePartialToString(), 1.0)
    with pytest.raises(ColumnsError):
        src.add(b"\xff\xff", 1.0)
    assert len(tracker) == 0
    with pytest.raises(ValueError, match="8 bytes"):
        UpdateSource("fw-1", "ex-1", b"short", b"", UUID_KEY, tracker)
