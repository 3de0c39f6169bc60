"""The status path's codec (corral._core.decoding and .encoding): the same bytes as the generated
protobuf classes in both directions, protobuf's decoding rules, and a clear error for
every kind of malformed input."""
import random

import pytest

import corral._core as core
from corral.protos import corral_pb2 as pb
from corral._core.decoding import (ColumnsError, agent_id_of, canonical_task_id, decode_acks, decode_updates, status_fields,
                                   status_state)
from corral._core.encoding import answer_status, encode_acks, encode_reconcile, encode_updates

STRINGS = ["", "fw-1", "ex", "t-ü-1", "x" * 200]


def random_rows(rng: random.Random, n: int) -> list[tuple]:
    return [(rng.choice(STRINGS), rng.choice(STRINGS), f"t{i}", rng.randrange(14), rng.randbytes(rng.choice([0, 16])),
             rng.randbytes(rng.randrange(0, 300)), rng.randrange(3), rng.randrange(14)) for i in range(n)]


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def columns_of(rows: list[tuple]) -> pb.StatusColumns:
    cols = pb.StatusColumns()
    for fid, eid, tid, state, uuid, status, health, latest in rows:
        cols.framework_ids.append(fid)
        cols.executor_ids.append(eid)
        cols.task_ids.append(tid)
        cols.states.append(state)
        cols.uuids.append(uuid)
        cols.statuses.append(status)
        cols.healths.append(health)
        cols.latest_states.append(latest)
    return cols


@pytest.mark.parametrize("n", [0, 1, 2, 150])
def test_updates_are_protobuf_bytes_both_ways(n):
    rows = random_rows(random.Random(n), n)
    data = encode_updates(rows)
    expected = pb.StatusUpdateMessage(updates=columns_of(rows))
    assert data == expected.SerializeToString()
    for cls in (pb.ExecutorStatusUpdate, pb.StatusUpdateMessage, pb.Updates):
        assert decode_updates(cls(updates=columns_of(rows)).SerializeToString()) == rows


def test_both_builds_write_the_same_bytes():
    pure = core.load_pure()
    rows = random_rows(random.Random(7), 40)
    assert pure.encoding.encode_updates(rows) == encode_updates(rows)
    assert pure.decoding.decode_updates(encode_updates(rows)) == rows
    acks = [("a", "t1", b"u" * 16), ("b", "t2", b"")]
    assert pure.encoding.encode_acks("f", None, acks) == encode_acks("f", None, acks)


def test_ids_decode_right_however_they_repeat():
    """Framework, executor and agent ids are decoded through a small cache in the
    compiled build: many distinct ids (which share its slots) and ids that differ in
    one byte or in length still decode to their own values."""
    rng = random.Random(3)
    ids = [f"fw-{i}" for i in range(300)] + ["fw-1x", "fw-", "", "fw-ü", "fw-ü" * 40]
    for _ in range(3):
        rows = [(rng.choice(ids), rng.choice(ids), "t", 1, b"u", b"s", 0, 1) for _ in range(rng.randrange(1, 40))]
        assert decode_updates(encode_updates(rows)) == rows
        assert [decode_updates(encode_updates([row]))[0] for row in rows] == rows
        acks = [(rng.choice(ids), "t", b"u") for _ in range(5)]
        assert decode_acks(encode_acks(rows[0][0], None, acks), 3) == (rows[0][0], None, acks)


def test_task_ids_seen_in_turn_decode_to_the_strs_made_the_first_time():
    """Tens of thousands of live tasks, each seen once in turn (as a relay sees them,
    wave after wave): the compiled build hands out the str it made for each task id the
    time before (so dict lookups by task id compare by identity), apart from a few whose
    set of the cache overflowed; the ids that collide still decode right."""
    rows = [("fw", "ex", f"t{i}", 1, b"u" * 16, b"s", 0, 1) for i in range(10_000)]
    rows += [("fw", "ex", f"t{i}-ü" * 3, 1, b"u" * 16, b"s", 0, 1) for i in range(2_000)]
    data = encode_updates(rows)
    first = decode_updates(data)
    second = decode_updates(data)
    assert first == rows and second == rows
    if core.CORE == "cython":
        same = sum(a[2] is b[2] for a, b in zip(first, second))
        assert same >= 0.97 * len(rows), same  # (direct-mapped, 16 384 slots: 49%)


def test_a_canonical_task_id_is_the_str_decoded_for_it_from_then_on():
    """An engine keys its tasks by canonical_task_id(the launch's id): the decoders then
    hand out that very str for the id (compiled build), so dict lookups hit by identity;
    an equal str made later canonicalises to the first."""
    tid = "".join(["canonical-", str(random.Random(5).random())])  # (made at run time: not interned)
    assert canonical_task_id(tid) is tid
    again = "".join(["canonical-", tid[len("canonical-"):]])
    assert again == tid and again is not tid
    rows = [("fw", "ex", tid, 1, b"u" * 16, b"s", 0, 1), ("fw", "ex", "other", 1, b"v" * 16, b"s", 0, 1)]
    (decoded, _), acks = decode_updates(encode_updates(rows)), decode_acks(
        encode_acks("fw", None, [("a", tid, b"u" * 16)]), 3)[2]
    assert decoded[2] == acks[0][1] == tid
    if core.CORE == "cython":
        assert canonical_task_id(again) is tid
        assert decoded[2] is tid and acks[0][1] is tid
    else:
        assert canonical_task_id(again) is again


def test_missing_latest_states_default_to_the_states():
    cols = columns_of(random_rows(random.Random(1), 3))
    cols.ClearField("latest_states")
    rows = decode_updates(pb.Updates(updates=cols).SerializeToString())
    assert [row[7] for row in rows] == list(cols.states)


def test_decoding_follows_protobufs_rules():
    rows = random_rows(random.Random(2), 4)
    first, second = columns_of(rows[:2]), columns_of(rows[2:])
    # the message field twice: merged, its columns concatenated
    merged = (pb.Updates(updates=first).SerializeToString() + pb.Updates(updates=second).SerializeToString())
    assert decode_updates(merged) == rows
    # unknown fields of every wire type are skipped, outside and inside the columns
    unknown = b"\x48\x05" + b"\x51" + b"\x00" * 8 + b"\x5a\x02ab" + b"\x65" + b"\x00" * 4
    inner = columns_of(rows[:1]).SerializeToString()
    data = unknown + b"\x0a" + varint(len(inner) + len(unknown)) + inner + unknown
    assert decode_updates(data) == rows[:1]
    # integer columns may arrive unpacked
    cols = pb.StatusColumns()
    cols.ParseFromString(inner)
    unpacked = pb.StatusColumns(framework_ids=cols.framework_ids, executor_ids=cols.executor_ids,
                                task_ids=cols.task_ids, uuids=cols.uuids, statuses=cols.statuses)
    body = unpacked.SerializeToString() + b"\x20" + bytes([rows[0][3]]) + b"\x38" + bytes([rows[0][7]])
    body += b"\x40" + bytes([rows[0][6]])
    assert decode_updates(b"\x0a" + varint(len(body)) + body) == rows[:1]


@pytest.mark.parametrize(("data", "problem"), [
    (b"\x0a\x05\x0a", "past the end"),                          # a field longer than its message
    (b"\x0a\x02\x1a\x05", "past the end"),                      # a string longer than the columns
    (b"\x0a\x03\x1a\x01\xff", "UTF-8"),                         # a task id that is not UTF-8
    (b"\x0a\x03\x0a\x01\xff", "UTF-8"),                         # a framework id that is not UTF-8
    (b"\x0a\x04\x12\x02\xc3\x28", "UTF-8"),                     # an executor id that is not UTF-8
    (b"\x0a\x01\x80", "truncated varint"),
    (b"\x0a\x0b" + b"\x20" + b"\xff" * 10, "longer than 10 bytes"),
    (b"\x0a\x02\x1a\x00", "differ in length"),                  # a task id and nothing else
    (b"\x0f", "wire type 7"),
])
def test_malformed_updates_raise_a_clear_error(data, problem):
    with pytest.raises(ColumnsError, match=problem):
        decode_updates(data)


def test_acks_are_protobuf_bytes_both_ways():
    uuid = b"u" * 16
    ack = pb.Acknowledge(framework_id="f", agent_ids=["a1", "a2"], task_ids=["t1", "t2"], uuids=[uuid, b""])
    rows = [("a1", "t1", uuid), ("a2", "t2", b"")]
    assert encode_acks("f", None, rows) == ack.SerializeToString()
    assert decode_acks(ack.SerializeToString(), 3) == ("f", None, rows)
    to_agent = pb.StatusUpdateAck(agent_id="a", framework_ids=["f1"], task_ids=["t"], uuids=[uuid])
    assert decode_acks(to_agent.SerializeToString(), 3) == ("a", None, [("f1", "t", uuid)])
    to_executor = pb.ExecutorStatusUpdateAck(agent_id="a", framework_id="f", task_ids=["t1", "t2"], uuids=[uuid, uuid])
    assert encode_acks("a", "f", [("t1", uuid), ("t2", uuid)]) == to_executor.SerializeToString()
    assert decode_acks(to_executor.SerializeToString(), 2) == ("a", "f", [("t1", uuid), ("t2", uuid)])
    assert decode_acks(b"\x0a\x01a\x0a\x01b", 3) == ("b", None, [])  # a singular field twice: the last


@pytest.mark.parametrize(("data", "width", "problem"), [
    (b"", 3, "field 1"),
    (pb.ExecutorStatusUpdateAck(agent_id="a", framework_id="f").SerializeToString()[:3], 2, "field 2"),
    (pb.Acknowledge(framework_id="f", task_ids=["t"], uuids=[b"u"]).SerializeToString(), 3, "differ in length"),
    (pb.Acknowledge(framework_id="f", agent_ids=["a"], task_ids=["t"]).SerializeToString(), 3, "differ in number"),
])
def test_malformed_acks_raise_a_clear_error(data, width, problem):
    with pytest.raises(ColumnsError, match=problem):
        decode_acks(data, width)


def test_the_value_ranges_are_corral_protos():
    assert sorted(pb.TaskState.values()) == list(range(core.decoding.MAX_STATE + 1))
    assert core.decoding.MAX_HEALTH == 2  # StatusColumns.healths: 0 not reported, 1 healthy, 2 unhealthy


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("states", core.decoding.MAX_STATE + 1, "a state out of range: 14"),
    ("latest_states", 99, "a latest state out of range: 99"),
    ("healths", 3, "a health out of range: 3"),
    ("states", -1, "a state out of range: -1"),  # an int32 sign-extended to ten bytes
])
@pytest.mark.parametrize("rows", [1, 2])  # one row takes the fast path
def test_values_outside_the_schemas_ranges_are_malformed(field, value, problem, rows):
    """(An executor sending state 14 would otherwise reach the master, whose /state could
    not name it; the generated classes refuse such enum values, so the bytes are made by
    hand here.)"""
    cols = columns_of([("f", "e", "t", 1, b"u", b"s", 0, 1)] * rows)
    cols.ClearField(field)
    number = pb.StatusColumns.DESCRIPTOR.fields_by_name[field].number
    packed = b"".join(varint(value & 0xFFFFFFFFFFFFFFFF) for _ in range(rows))
    inner = cols.SerializeToString() + varint(number << 3 | 2) + varint(len(packed)) + packed
    with pytest.raises(ColumnsError, match=problem):
        decode_updates(b"\x0a" + varint(len(inner)) + inner)
    row = ["f", "e", "t", 1, b"u", b"s", 0, 1]
    row[{"states": 3, "healths": 6, "latest_states": 7}[field]] = value
    with pytest.raises(ColumnsError, match="out of range"):
        encode_updates([tuple(row)] * rows)


def test_rows_that_do_not_fit_the_schema_are_refused():
    row = ("f", "e", "t", 1, b"u", b"s", 0, 1)
    with pytest.raises(ColumnsError, match="tuple of 8 fields"):
        encode_updates([row[:7]])
    with pytest.raises(ColumnsError, match="tuple of 8 fields"):
        encode_updates([list(row)])
    with pytest.raises(ColumnsError, match="out of range"):
        encode_updates([(*row[:3], -1, *row[4:])])
    with pytest.raises(ColumnsError, match="is a bytes, not a str"):
        encode_updates([(b"f", *row[1:])])
    with pytest.raises(ColumnsError, match="tuple of 3 fields"):
        encode_acks("f", None, [("t", b"u")])
    with pytest.raises(ColumnsError, match="tuple of 2 fields"):
        encode_acks("a", "f", [("x", "t", b"u")])
    with pytest.raises(ColumnsError, match="is a int, not a str"):
        encode_acks("f", None, [(7, "t", b"u")])


def status_of(**fields) -> pb.TaskStatus:
    status = pb.TaskStatus(state=fields.pop("state", pb.TASK_RUNNING), **fields)
    status.task_id.value = status.task_id.value or "t-1"
    return status


@pytest.mark.parametrize("status", [
    status_of(),
    status_of(state=pb.TASK_FINISHED, agent_id=pb.AgentID(value="a-ü"), healthy=True, message="m" * 300,
              uuid=b"u" * 16, timestamp=3.5, source=pb.TaskStatus.SOURCE_EXECUTOR, data=b"\x00" * 40),
    status_of(state=pb.TASK_STAGING, healthy=False, executor_id=pb.ExecutorID(value="e")),
])
def test_status_fields_are_what_protobuf_reads(status):
    expected = (status.task_id.value, status.state,
                0 if not status.HasField("healthy") else 1 if status.healthy else 2, status.agent_id.value)
    assert status_fields(status.SerializeToString()) == expected
    assert status_state(status.SerializeToString()) == status.state


def test_the_state_of_a_status_with_an_empty_task_id_is_minus_one():
    """status_state reads the task id only as empty or not: the last value seen counts."""
    empty = pb.TaskStatus(task_id=pb.TaskID(value=""), state=pb.TASK_RUNNING).SerializeToString()
    named = status_of(state=pb.TASK_KILLED).SerializeToString()
    assert status_state(empty) == -1
    assert status_state(named + empty) == -1 and status_state(empty + named) == pb.TASK_KILLED


def test_status_fields_merge_as_protobuf_does():
    """An agent stamps its id by appending a second agent_id; a later state wins too."""
    first = status_of(agent_id=pb.AgentID(value="old"), healthy=True).SerializeToString()
    later = pb.TaskStatus(agent_id=pb.AgentID(value="new"), state=pb.TASK_FAILED, healthy=False).SerializePartialToString()
    merged = pb.TaskStatus.FromString(first + later)
    assert status_fields(first + later) == (merged.task_id.value, pb.TASK_FAILED, 2, "new")


@pytest.mark.parametrize(("data", "problem"), [
    (pb.TaskStatus(state=pb.TASK_RUNNING).SerializePartialToString(), "without a task id"),
    (pb.TaskStatus(task_id=pb.TaskID(value="t")).SerializePartialToString(), "without a state"),
    (b"\x0a\x03\x0a\x01t\x10\x63", "state out of range: 99"),
    (b"\x0a\x09\x0a\x01t", "past the end"),
    (b"\x0a\x03\x0a\x01t\x10", "truncated varint"),
])
def test_malformed_statuses_raise_a_clear_error(data, problem):
    with pytest.raises(ColumnsError, match=problem):
        status_fields(data)
    with pytest.raises(ColumnsError, match=problem):
        status_state(data)


def test_agent_id_of_is_what_protobuf_reads():
    plain = status_of(agent_id=pb.AgentID(value="agent-1"), message="m").SerializeToString()
    stamped = plain + pb.TaskStatus(agent_id=pb.AgentID(value="agent-2")).SerializePartialToString()
    for data in (plain, stamped, status_of().SerializeToString()):
        assert agent_id_of(data) == pb.TaskStatus.FromString(data).agent_id.value
    with pytest.raises(ColumnsError, match="past the end"):
        agent_id_of(b"\x3a\x09\x0a\x01a")


@pytest.mark.parametrize("tasks", [[], [("t1", "")], [("t-ü", "a-1"), ("t2", ""), ("t3", "a" * 200)],
                                   [(f"task-{i}", f"S{i % 7}") for i in range(300)]])
def test_a_reconcile_call_is_protobufs_bytes(tasks):
    expected = pb.Reconcile(framework_id=pb.FrameworkID(value="fw-ü"))
    for tid, agent_id in tasks:
        entry = expected.tasks.add(task_id=pb.TaskID(value=tid))
        if agent_id:
            entry.agent_id.value = agent_id
    assert encode_reconcile("fw-ü", tasks) == expected.SerializeToString()
    assert core.load_pure().encoding.encode_reconcile("fw-ü", tasks) == expected.SerializeToString()


def test_a_reconcile_call_refuses_what_is_not_a_pair_of_strs():
    with pytest.raises(ColumnsError, match="tuple of 2 fields"):
        encode_reconcile("fw", [("t1", "a", "x")])
    with pytest.raises(ColumnsError, match="is a bytes, not a str"):
        encode_reconcile("fw", [(b"t1", "a")])


@pytest.mark.parametrize("state, agent_id, health", [
    (pb.TASK_RUNNING, "a-1", 0), (pb.TASK_LOST, "", 1), (pb.TASK_FINISHED, "a-ü" * 50, 2), (pb.TASK_UNKNOWN, None, 0),
])
def test_an_answer_status_parses_to_the_status_protobuf_builds(state, agent_id, health):
    shared = pb.TaskStatus(source=pb.TaskStatus.SOURCE_MASTER, timestamp=12.5, message="reconciliation",
                           reason=pb.TaskStatus.REASON_RECONCILIATION).SerializePartialToString()
    expected = pb.TaskStatus(task_id=pb.TaskID(value="task-7"), state=state, source=pb.TaskStatus.SOURCE_MASTER,
                             timestamp=12.5, message="reconciliation", reason=pb.TaskStatus.REASON_RECONCILIATION)
    if agent_id:
        expected.agent_id.value = agent_id
    if health:
        expected.healthy = health == 1
    for build in (core.encoding, core.load_pure().encoding):
        data = build.answer_status("task-7", state, agent_id, health, shared)
        assert pb.TaskStatus.FromString(data) == expected
        assert status_fields(data) == ("task-7", state, health, agent_id or "")
    with pytest.raises(ColumnsError, match="out of range: 99, 0"):
        answer_status("t", 99, "a", 0, shared)
