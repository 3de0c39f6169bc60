"""AckTracker: stream ordering, duplicates, stale/unknown acks, backoff, pause/resume."""
import pytest

from corral._core.acks import RECENT_MAX, AckResult, AckTracker, AddResult, RecentUuids

K = ("framework-1", "task-1")
K2 = ("framework-1", "task-2")


@pytest.fixture
def t():
    return AckTracker(initial_backoff=10.0, max_backoff=100.0)


def test_defaults():
    t = AckTracker()  # 10 s initial, 600 s cap
    assert t.add(K, b"u1", "p", 0.0) is AddResult.FORWARD
    assert t.next_deadline() == 10.0
    for expected in (20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0):
        now = t.next_deadline()
        assert t.due(now) == [(K, b"u1", "p")]
        assert t.next_deadline() - now == expected


def test_invalid_backoffs():
    with pytest.raises(ValueError):
        AckTracker(initial_backoff=0.0)
    with pytest.raises(ValueError):
        AckTracker(initial_backoff=10.0, max_backoff=5.0)


def test_first_update_forwarded_rest_queued_in_order(t):
    assert t.add(K, b"u1", "p1", 0.0) is AddResult.FORWARD
    assert t.add(K, b"u2", "p2", 1.0) is AddResult.QUEUED
    assert t.add(K, b"u3", "p3", 2.0) is AddResult.QUEUED
    assert t.head(K) == (b"u1", "p1")
    assert t.pending(K) == [(b"u1", "p1"), (b"u2", "p2"), (b"u3", "p3")]
    assert len(t) == 3 and t.stream_count() == 1 and K in t and K2 not in t
    assert t.next_deadline() == 10.0  # only the head is in flight


def test_ack_pops_head_and_releases_next(t):
    for i in range(3):
        t.add(K, b"u%d" % i, i, 0.0)
    assert t.ack(K, b"u0", 5.0) is AckResult.ACKED
    assert t.head(K) == (b"u1", 1)
    assert t.next_deadline() == 15.0  # next head: deadline now + initial
    assert t.ack(K, b"u1", 6.0) is AckResult.ACKED
    assert t.ack(K, b"u2", 7.0) is AckResult.ACKED
    assert t.head(K) is None and t.pending(K) == [] and len(t) == 0
    assert K in t and t.stream_count() == 1  # the stream (its acked uuids) is kept
    assert t.next_deadline() is None and t.due(1e9) == []


def test_stale_and_unknown_acks(t):
    t.add(K, b"u1", "p1", 0.0)
    t.add(K, b"u2", "p2", 0.0)
    assert t.ack(K, b"u2", 1.0) is AckResult.STALE  # not the head
    assert t.ack(K, b"nope", 1.0) is AckResult.STALE
    assert t.ack(K2, b"u1", 1.0) is AckResult.UNKNOWN
    assert t.pending(K) == [(b"u1", "p1"), (b"u2", "p2")]
    assert t.ack(K, b"u1", 1.0) is AckResult.ACKED
    assert t.ack(K, b"u1", 2.0) is AckResult.STALE  # duplicate ack
    assert t.head(K) == (b"u2", "p2")
    assert t.ack(K, b"u2", 2.0) is AckResult.ACKED
    assert t.ack(K, b"u2", 3.0) is AckResult.STALE  # empty stream
    assert len(t) == 0


def test_duplicates_of_pending_and_acked_dropped(t):
    assert t.add(K, b"u1", "p1", 0.0) is AddResult.FORWARD
    assert t.add(K, b"u1", "again", 0.0) is AddResult.DUPLICATE  # pending head
    assert t.add(K, b"u2", "p2", 0.0) is AddResult.QUEUED
    assert t.add(K, b"u2", "again", 0.0) is AddResult.DUPLICATE  # pending, queued
    assert t.add(K, b"u1", "again", 0.0) is AddResult.DUPLICATE
    t.ack(K, b"u1", 1.0)
    assert t.add(K, b"u1", "again", 1.0) is AddResult.DUPLICATE  # already acked
    t.ack(K, b"u2", 1.0)
    assert t.add(K, b"u2", "again", 1.0) is AddResult.DUPLICATE
    assert t.add(K, b"u3", "p3", 2.0) is AddResult.FORWARD  # empty stream: new head
    assert t.pending(K) == [(b"u3", "p3")] and len(t) == 1
    assert t.add(K2, b"u1", "other", 2.0) is AddResult.FORWARD  # per stream


def test_single_acked_update_remembered(t):
    t.add(K, b"u1", "p1", 0.0)
    assert t.ack(K, b"u1", 1.0) is AckResult.ACKED
    assert t.add(K, b"u1", "p1", 2.0) is AddResult.DUPLICATE
    assert len(t) == 0


def test_due_backoff_doubles_and_caps(t):
    t.add(K, b"u1", "p", 0.0)
    assert t.due(9.999) == []
    deadlines = []
    now = 10.0
    for _ in range(7):
        assert t.due(now) == [(K, b"u1", "p")]
        assert t.due(now) == []  # rescheduled into the future
        now = t.next_deadline()
        deadlines.append(now)
    assert deadlines == [30.0, 70.0, 150.0, 250.0, 350.0, 450.0, 550.0]


def test_due_uses_now_and_orders_by_deadline(t):
    t.add(K, b"a", 1, 0.0)
    t.add(K2, b"b", 2, 3.0)
    t.add(("f", "t3"), b"c", 3, 1.0)
    assert t.due(12.0) == [(K, b"a", 1), (("f", "t3"), b"c", 3)]
    due = t.due(50.0)  # b (13.0) first, then a and c (both 32.0)
    assert due[0] == (K2, b"b", 2)
    assert sorted(due[1:]) == sorted([(K, b"a", 1), (("f", "t3"), b"c", 3)])
    # late tick: next retries are counted from now, with doubled backoff
    assert t.next_deadline() == 50.0 + 20.0


def test_ack_resets_backoff_for_next_head(t):
    t.add(K, b"u1", 1, 0.0)
    t.add(K, b"u2", 2, 0.0)
    t.due(10.0)
    t.due(30.0)
    t.ack(K, b"u1", 31.0)
    assert t.next_deadline() == 41.0
    assert t.due(41.0) == [(K, b"u2", 2)]
    assert t.next_deadline() == 61.0


def test_queued_update_not_due_until_head(t):
    t.add(K, b"u1", 1, 0.0)
    t.add(K, b"u2", 2, 0.0)
    assert [u for _, u, _ in t.due(1000.0)] == [b"u1"]


def test_pause_and_resume(t):
    t.add(K, b"u1", 1, 0.0)
    t.add(K, b"u2", 2, 0.0)
    t.add(K2, b"v1", 3, 5.0)
    t.due(10.0)
    t.pause()
    assert t.due(1000.0) == [] and t.next_deadline() is None
    assert t.add(("f", "t3"), b"w1", 4, 500.0) is AddResult.FORWARD  # still tracked
    assert t.ack(K2, b"v1", 600.0) is AckResult.ACKED
    resent = t.resume(1000.0)
    assert sorted(resent) == sorted([(K, b"u1", 1), (("f", "t3"), b"w1", 4)])
    assert t.next_deadline() == 1010.0  # backoff restarted at initial
    assert sorted(t.due(1010.0)) == sorted(resent)
    assert t.next_deadline() == 1030.0


def test_remove_forgets_stream(t):
    t.add(K, b"u1", 1, 0.0)
    t.add(K, b"u2", 2, 0.0)
    t.add(K2, b"v1", 3, 5.0)
    t.ack(K, b"u1", 1.0)
    t.remove(K)
    assert K not in t and len(t) == 1 and t.stream_count() == 1
    assert t.ack(K, b"u2", 2.0) is AckResult.UNKNOWN
    assert t.head(K) is None and t.pending(K) == []
    assert t.due(100.0) == [(K2, b"v1", 3)]
    assert t.add(K, b"u1", 1, 200.0) is AddResult.FORWARD  # acked memory forgotten
    t.remove(("never", "seen"))  # no-op


def test_heap_stays_consistent_under_churn(t):
    # many streams, removals and acks at different times; due() must stay in order
    import random

    rng = random.Random(7)
    expected = {}
    for i in range(300):
        key = ("f", str(i))
        now = rng.uniform(0, 100)
        t.add(key, b"u", i, now)
        expected[key] = now + 10.0
    for i in range(0, 300, 3):
        t.remove(("f", str(i)))
        del expected[("f", str(i))]
    for i in range(1, 300, 5):
        key = ("f", str(i))
        if key in expected:
            t.add(key, b"u2", i, 0.0)
            t.ack(key, b"u", 50.0)
            expected[key] = 60.0
    order = sorted(expected, key=lambda k: expected[k])
    assert t.next_deadline() == expected[order[0]]
    got = t.due(1e6)
    assert [k for k, _, _ in got] == sorted((k for k, _, _ in got), key=lambda k: expected[k])
    assert {k for k, _, _ in got} == set(expected)


def test_any_hashable_key_and_payload(t):
    assert t.add(17, b"u", None, 0.0) is AddResult.FORWARD
    assert t.head(17) == (b"u", None)
    with pytest.raises(TypeError):
        t.add(["unhashable"], b"u", None, 0.0)


@pytest.mark.parametrize("n", [3, 9, 200])  # short streams scan, long ones keep a set
def test_long_stream_order_and_duplicates(t, n):
    for i in range(n):
        assert t.add(K, b"u%d" % i, i, 0.0) is (AddResult.FORWARD if i == 0
                                                 else AddResult.QUEUED)
    for i in range(n):
        assert t.add(K, b"u%d" % i, "dup", 0.0) is AddResult.DUPLICATE
    assert t.pending(K) == [(b"u%d" % i, i) for i in range(n)]
    for i in range(n):
        assert t.head(K) == (b"u%d" % i, i)
        assert t.ack(K, b"u%d" % (i + 1), 1.0) is AckResult.STALE
        assert t.ack(K, b"u%d" % i, 1.0) is AckResult.ACKED
        assert len(t) == n - i - 1
        assert t.pending(K) == [(b"u%d" % j, j) for j in range(i + 1, n)]
        if i % 7 == 0:  # interleave adds while popping
            assert t.add(K, b"u%d" % i, "dup", 1.0) is AddResult.DUPLICATE
    assert t.head(K) is None and len(t) == 0
    assert t.add(K, b"u%d" % (n - 1), "dup", 2.0) is AddResult.DUPLICATE


def test_queue_refills_after_partial_drain(t):
    for i in range(100):
        t.add(K, b"a%d" % i, i, 0.0)
    for i in range(80):
        t.ack(K, b"a%d" % i, 1.0)
    for i in range(100):
        assert t.add(K, b"b%d" % i, i, 2.0) is AddResult.QUEUED
    expected = [(b"a%d" % i, i) for i in range(80, 100)] + [(b"b%d" % i, i) for i in range(100)]
    assert t.pending(K) == expected and len(t) == 120
    for uuid, _ in expected:
        assert t.ack(K, uuid, 3.0) is AckResult.ACKED
    assert len(t) == 0


@pytest.mark.parametrize("count", [200, 230, 255])
def test_a_stream_remembers_its_last_64_acked_uuids_not_all_of_them(t, count):
    """A long-lived stream (a task's health updates for weeks) must not grow for ever:
    retries of the last 64 acknowledged updates are still dropped, wherever the stream
    is between two clean-ups of its memory (at most 128 kept), but an update acked
    long ago is forgotten (only a stale copy could bring it back)."""
    uuids = [b"u%d" % i for i in range(count)]
    for i, uuid in enumerate(uuids):
        assert t.add(K, uuid, i, float(i)) is AddResult.FORWARD
        assert t.ack(K, uuid, float(i)) is AckResult.ACKED
    assert [t.add(K, uuid, "again", 300.0) for uuid in uuids[-64:]] == [AddResult.DUPLICATE] * 64
    assert t.add(K, uuids[-130], "again", 300.0) is AddResult.FORWARD  # forgotten
    # while updates are pending, every pending uuid is remembered however many queue up
    for i in range(300):
        t.add(K2, b"p%d" % i, i, 1.0)
    assert t.ack(K2, b"p0", 2.0) is AckResult.ACKED
    assert t.add(K2, b"p299", "again", 3.0) is AddResult.DUPLICATE
    assert t.add(K2, b"p1", "again", 3.0) is AddResult.DUPLICATE
    assert len(t.pending(K2)) == 299


class _SameHash:
    """A uuid stand-in whose hash collides with every other one's."""

    def __init__(self, name):
        self.name = name

    def __hash__(self):
        return 7

    def __eq__(self, other):
        return isinstance(other, _SameHash) and other.name == self.name


def test_recent_uuids_keeps_the_last_ones_with_their_flags():
    recent = RecentUuids(3)
    assert len(recent) == 0 and recent.find(b"a") == -1 and list(recent) == []
    slots = [recent.add(u, flag) for u, flag in ((b"a", False), (b"b", True), (b"c", False))]
    assert sorted(slots) == [0, 1, 2] and list(recent) == [b"a", b"b", b"c"]
    assert [recent.flagged(recent.find(u)) for u in (b"a", b"b", b"c")] == [False, True, False]
    recent.set_flag(recent.find(b"c"))
    assert recent.flagged(recent.find(b"c"))
    recent.add(b"d", False)  # the oldest (a) goes
    assert b"a" not in recent and list(recent) == [b"b", b"c", b"d"] and len(recent) == 3
    assert not recent.flagged(recent.find(b"d"))  # a new uuid in a reused slot starts unflagged
    recent.forget(recent.find(b"c"))
    assert b"c" not in recent and list(recent) == [b"b", b"d"] and len(recent) == 2


def test_recent_uuids_compares_uuids_whose_hashes_collide():
    recent = RecentUuids(4)
    recent.add(_SameHash("x"), True)
    recent.add(_SameHash("y"), False)
    assert recent.flagged(recent.find(_SameHash("x"))) and not recent.flagged(recent.find(_SameHash("y")))
    assert recent.find(_SameHash("z")) == -1


@pytest.mark.parametrize("capacity", [0, -1, RECENT_MAX + 1])
def test_recent_uuids_capacity_is_checked(capacity):
    with pytest.raises(ValueError, match=str(capacity)):
        RecentUuids(capacity)


def test_due_orders_fresh_heads_and_retries_together(t):
    """Fresh heads (a FIFO) and retried ones (the heap) come due in one deadline order,
    and a head set out of order (the clock went back) is not lost behind later ones."""
    t.add(("f", "a"), b"a", "a", 0.0)  # due 10
    t.add(("f", "b"), b"b", "b", 5.0)  # due 15
    assert t.due(10.0) == [(("f", "a"), b"a", "a")]  # retried: due 30
    t.add(("f", "c"), b"c", "c", 21.0)  # due 31
    t.add(("f", "d"), b"d", "d", 1.0)  # the clock went back: due 11, before b
    assert t.next_deadline() == 11.0
    assert [k[1] for k, _, _ in t.due(100.0)] == ["d", "b", "a", "c"]


def test_a_tracker_can_remember_no_acked_uuids():
    """A sender (the executor driver) makes every uuid once: its streams keep no memory
    of acknowledged ones, only the pending uuids are checked."""
    t = AckTracker(remember=0)
    t.add(K, b"u1", 1, 0.0)
    assert t.add(K, b"u1", 1, 0.0) is AddResult.DUPLICATE  # still pending
    assert t.ack(K, b"u1", 1.0) is AckResult.ACKED
    assert t.add(K, b"u1", 1, 2.0) is AddResult.FORWARD  # not remembered once acked
    with pytest.raises(ValueError, match="65"):
        AckTracker(remember=RECENT_MAX + 1)


def test_recent_uuids_keeps_uuids_of_any_size_in_the_same_slots():
    """16-byte uuids (what corral makes; the compiled build keeps them inline) and
    others (kept by reference) share the ring: a slot can go from one to the other."""
    recent = RecentUuids(3)
    full = [bytes([i]) * 16 for i in range(5)]
    recent.add(full[0], True)
    recent.add(b"short", False)
    recent.add(full[1], False)
    assert list(recent) == [full[0], b"short", full[1]]
    assert recent.flagged(recent.find(bytes(full[0])))  # found by value, not by identity
    assert recent.find(b"\x00" * 15) == -1 and recent.find(full[2]) == -1
    recent.add(full[2], False)  # replaces full[0]
    recent.add(full[3], True)  # replaces b"short": a reference slot becomes inline
    recent.add(b"x", False)  # replaces full[1]: an inline slot holds a reference
    assert list(recent) == [full[2], full[3], b"x"]
    assert recent.find(full[0]) == -1 and recent.find(b"short") == -1 and recent.find(full[1]) == -1
    assert recent.flagged(recent.find(full[3])) and not recent.flagged(recent.find(b"x"))


def test_ack_next_returns_the_new_head_with_the_result():
    t = AckTracker(initial_backoff=10.0)
    t.add(K, b"u1", "p1", 0.0)
    t.add(K, b"u2", "p2", 0.0)
    assert t.ack_next(K, b"u2", 1.0) == (AckResult.STALE, None)  # not the head
    assert t.ack_next(K2, b"u1", 1.0) == (AckResult.UNKNOWN, None)
    assert t.ack_next(K, b"u1", 1.0) == (AckResult.ACKED, "p2")
    assert t.head(K) == (b"u2", "p2")
    assert t.next_deadline() == 11.0  # the new head's deadline starts at the ack
    assert t.ack_next(K, b"u2", 2.0) == (AckResult.ACKED, None)
    assert len(t) == 0 and t.next_deadline() is None


@pytest.mark.parametrize("capacity", [5, 37, RECENT_MAX])
def test_recent_uuids_keep_everything_as_they_fill_up(capacity):
    """Past the first few slots (the compiled build keeps those inside the object, then
    doubles them on the heap), every uuid and flag added is still found, in order,
    until the ring is full and the oldest go first."""
    recent = RecentUuids(capacity)
    uuids = [i.to_bytes(2, "big") * 8 for i in range(capacity + 10)]
    for n, uuid in enumerate(uuids[:capacity]):
        recent.add(uuid if n % 7 else uuid[:5], n % 3 == 0)  # some kept by reference
        kept = [u if i % 7 else u[:5] for i, u in enumerate(uuids[: n + 1])]
        assert list(recent) == kept and len(recent) == n + 1
    assert all(recent.flagged(recent.find(u if i % 7 else u[:5])) == (i % 3 == 0)
               for i, u in enumerate(uuids[:capacity]))
    for uuid in uuids[capacity:]:
        recent.add(uuid, False)
    assert list(recent) == (kept + uuids[capacity:])[-capacity:] and len(recent) == capacity
    assert all(recent.find(u) == -1 for u in kept[:10])  # the oldest went first


def test_recent_uuids_refuse_a_slot_they_do_not_have():
    recent = RecentUuids(RECENT_MAX)
    slot = recent.add(b"u" * 16, True)
    assert recent.flagged(slot)
    for bad in (-1, RECENT_MAX, 10 ** 6):
        with pytest.raises(IndexError):
            recent.flagged(bad)
        with pytest.raises(IndexError):
            recent.forget(bad)


def test_recent_uuids_start_empty_when_initialised_again():
    recent = RecentUuids(RECENT_MAX)
    for i in range(20):  # past the slots inside the object
        recent.add(bytes([i]) * 16, True)
    recent.__init__(RECENT_MAX)
    assert len(recent) == 0 and list(recent) == [] and recent.find(bytes([1]) * 16) == -1
    recent.add(b"x" * 16, False)
    assert list(recent) == [b"x" * 16] and not recent.flagged(recent.find(b"x" * 16))


def test_a_backoff_factor_below_one_is_refused():
    with pytest.raises(ValueError, match="0.5"):
        AckTracker(factor=0.5)
