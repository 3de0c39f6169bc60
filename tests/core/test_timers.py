"""TimerQueue: deadline order, ties, cancel."""
from corral._core.timers import TimerQueue


def test_pop_due_in_deadline_order():
    q = TimerQueue()
    for deadline, key in ((5.0, "e"), (1.0, "a"), (3.0, "c"), (2.0, "b"), (4.0, "d")):
        q.schedule(deadline, key)
    assert len(q) == 5 and q.next_deadline() == 1.0
    assert q.pop_due(0.5) == []
    assert q.pop_due(3.0) == ["a", "b", "c"]  # deadline == now is due
    assert len(q) == 2 and q.next_deadline() == 4.0
    assert q.pop_due(100.0) == ["d", "e"]
    assert len(q) == 0 and q.next_deadline() is None and q.pop_due(1e9) == []


def test_equal_deadlines_fire_in_schedule_order():
    q = TimerQueue()
    for key in range(20):
        q.schedule(7.0, key)
    assert q.pop_due(7.0) == list(range(20))


def test_handles_are_unique_and_cancel_once():
    q = TimerQueue()
    handles = [q.schedule(float(i), i) for i in range(10)]
    assert len(set(handles)) == 10
    assert q.cancel(handles[3]) is True
    assert q.cancel(handles[3]) is False
    assert q.cancel(123456) is False
    assert len(q) == 9
    assert q.pop_due(100.0) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert q.cancel(handles[0]) is False  # already fired


def test_cancelled_head_skipped_by_next_deadline():
    q = TimerQueue()
    h1 = q.schedule(1.0, "a")
    h2 = q.schedule(2.0, "b")
    q.schedule(3.0, "c")
    q.cancel(h1)
    q.cancel(h2)
    assert q.next_deadline() == 3.0 and len(q) == 1
    assert q.pop_due(3.0) == ["c"]


def test_mass_cancel_keeps_order():
    # most timers cancelled, from everywhere in the heap: the rest still pop in order
    q = TimerQueue()
    handles = {i: q.schedule(float(i % 97) + i / 10000.0, i) for i in range(2000)}
    for i in range(2000):
        if i % 10:
            assert q.cancel(handles[i])
    survivors = sorted((i for i in range(2000) if i % 10 == 0),
                       key=lambda i: float(i % 97) + i / 10000.0)
    assert len(q) == len(survivors)
    assert q.next_deadline() == float(survivors[0] % 97) + survivors[0] / 10000.0
    assert q.pop_due(1000.0) == survivors
    h = q.schedule(1.0, "after")
    assert q.pop_due(1.0) == ["after"] and not q.cancel(h)


def test_schedule_after_pops_and_interleaved_ops():
    q = TimerQueue()
    q.schedule(10.0, "late")
    q.schedule(1.0, "early")
    assert q.pop_due(5.0) == ["early"]
    h = q.schedule(2.0, "again")
    q.schedule(3.0, "third")
    assert q.cancel(h)
    assert q.pop_due(10.0) == ["third", "late"]


def test_the_monotonic_clock_is_its_offset_plus_time_monotonic():
    import time

    from corral._core import load_pure
    from corral._core.timers import MonotonicClock

    for cls in (MonotonicClock, load_pure().timers.MonotonicClock):
        clock = cls(1000.0)
        assert clock.offset == 1000.0
        before = time.monotonic()
        reading = clock()
        after = time.monotonic()
        assert before + 1000.0 - 1e-6 <= reading <= after + 1000.0 + 1e-6
        assert clock() >= reading
