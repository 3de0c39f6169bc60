"""The one retry policy (corral.engines.backoff): waits that grow by a factor up to a cap,
jitter from an injected random source, deadlines from an injected clock; and the ack
tracker following a policy's numbers."""
import random

import pytest

from corral.engines.backoff import Backoff, Jitter
from corral.engines.status import ack_tracker


def test_waits_grow_by_the_factor_up_to_the_cap():
    retry = Backoff(1.0, 10.0).retry()
    assert [retry.delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    retry = Backoff(0.5, 20.0, factor=3.0).retry()
    assert [retry.delay() for _ in range(5)] == [0.5, 1.5, 4.5, 13.5, 20.0]
    fixed = Backoff(1.0, 1.0, factor=1.0).retry()
    assert [fixed.delay() for _ in range(3)] == [1.0, 1.0, 1.0]


def test_the_first_wait_is_the_initial_one_even_above_the_cap():
    retry = Backoff(5.0, 2.0).retry()
    assert [retry.delay() for _ in range(3)] == [5.0, 2.0, 2.0]


def test_each_retry_starts_over_from_the_initial_wait():
    policy = Backoff(1.0, 8.0)
    first = policy.retry()
    first.delay(), first.delay()
    assert policy.retry().delay() == 1.0 and first.delay() == 4.0


def test_full_jitter_draws_each_wait_uniformly_up_to_its_bound_from_the_injected_source():
    retry = Backoff(1.0, 4.0, jitter=Jitter.FULL, random=random.Random(7)).retry()
    expected = random.Random(7)
    assert [retry.delay() for _ in range(5)] == [expected.uniform(0, bound) for bound in (1.0, 2.0, 4.0, 4.0, 4.0)]
    waits = [Backoff(2.0, 2.0, jitter=Jitter.FULL, random=random.Random(seed)).retry().delay() for seed in range(200)]
    assert all(0.0 <= w <= 2.0 for w in waits) and len(set(waits)) == 200


def test_deadlines_are_now_plus_the_wait_and_the_policy_clock_when_no_time_is_given():
    times = iter([100.0, 200.0])
    retry = Backoff(1.0, 60.0, clock=lambda: next(times)).retry()
    assert retry.next_deadline(5.0) == 6.0
    assert retry.next_deadline() == 102.0
    assert retry.next_deadline() == 204.0


@pytest.mark.parametrize("args, bad", [((0.0, 1.0), "0.0"), ((-1.0, 1.0), "-1.0"), ((1.0, 0.0), "0.0"),
                                       ((1.0, 2.0, 0.5), "0.5")])
def test_a_policy_that_cannot_wait_is_refused_naming_the_value(args, bad):
    with pytest.raises(ValueError, match=bad):
        Backoff(*args)


def test_an_ack_tracker_retransmits_as_its_policy_says():
    tracker = ack_tracker(Backoff(10.0, 100.0, factor=3.0), remember=0)
    tracker.add("t", b"u" * 16, "row", 0.0)
    deadlines = []
    now = 0.0
    for _ in range(4):
        now = tracker.next_deadline()
        deadlines.append(now)
        assert tracker.due(now) == [("t", b"u" * 16, "row")]
    assert deadlines == [10.0, 40.0, 130.0, 230.0]


def test_an_ack_tracker_is_never_jittered():
    with pytest.raises(ValueError, match="not jittered"):
        ack_tracker(Backoff(10.0, 600.0, jitter=Jitter.FULL), remember=0)
