"""The reconciliation algorithm, with a fake clock."""
from __future__ import annotations

from corral.protos import corral_pb2 as pb
from corral.engines.scheduler.reconcile import Escalation, Progress, Query, ReconcileConfig, Reconciler, RoundKind


def make(**kwargs) -> Reconciler:
    return Reconciler(ReconcileConfig(**kwargs))


def queries(items) -> list[Query]:
    return [q for q in items if isinstance(q, Query)]


def test_round_asks_for_every_non_terminal_task_and_converges_when_all_answered() -> None:
    r = make()
    r.track("a", "agent-1", pb.TASK_RUNNING, 0.0)
    r.track("b", "agent-2", pb.TASK_STAGING, 0.0)
    query, learn = r.start(10.0)
    assert query == Query((("a", "agent-1"), ("b", "agent-2")), RoundKind.EXPLICIT)
    assert learn == Query((), RoundKind.IMPLICIT)
    assert not r.converged
    r.updated([("a", "agent-1", pb.TASK_RUNNING, False)], 10.5)
    assert r.progress(10.5).remaining == 1
    assert not r.converged
    r.updated([("b", "agent-2", pb.TASK_LOST, True)], 11.0)
    assert r.converged
    assert r.tasks == {"a": ("agent-1", pb.TASK_RUNNING)}


def test_no_tasks_converges_at_once_and_still_asks_the_master_implicitly() -> None:
    r = make()
    assert r.start(0.0) == [Query((), RoundKind.IMPLICIT)]
    assert r.converged


def test_unanswered_tasks_are_asked_again_with_truncated_exponential_backoff() -> None:
    r = make(initial_backoff=2.0, max_backoff=8.0, max_attempts=100)
    r.track("a", "agent-1", pb.TASK_RUNNING, 0.0)
    r.track("b", "agent-1", pb.TASK_RUNNING, 0.0)
    r.start(0.0)
    r.updated([("a", "agent-1", pb.TASK_RUNNING, False)], 1.0)
    times = []
    now = 0.0
    for _ in range(5):
        now = r.next_deadline()
        [q] = queries(r.due(now))
        assert q.tasks == (("b", "agent-1"),)  # only what is still unanswered
        times.append(now)
    gaps = [b - a for a, b in zip([0.0] + times, times)]
    assert gaps == [2.0, 4.0, 8.0, 8.0, 8.0]


def test_nothing_is_due_before_the_deadline() -> None:
    r = make(initial_backoff=2.0)
    r.track("a", "x", pb.TASK_RUNNING, 0.0)
    r.start(0.0)
    assert r.due(1.9) == []


def test_a_round_that_does_not_converge_is_escalated_once_and_keeps_going() -> None:
    r = make(initial_backoff=1.0, max_backoff=1.0, max_attempts=3)
    r.track("ghost", "agent-9", pb.TASK_RUNNING, 0.0)
    r.start(0.0)
    escalations = []
    now = 0.0
    for _ in range(6):
        now = r.next_deadline()
        out = r.due(now)
        escalations += [e for e in out if isinstance(e, Escalation)]
        assert queries(out), "the round keeps asking"
    assert len(escalations) == 1
    assert escalations[0].task_ids == ("ghost",)
    assert escalations[0].progress.attempts == 3
    assert escalations[0].progress.remaining == 1


def test_periodic_implicit_round_then_explicit_for_what_it_did_not_cover() -> None:
    r = make(periodic_interval=900.0, initial_backoff=2.0)
    r.track("a", "agent-1", pb.TASK_RUNNING, 0.0)
    r.start(0.0)
    r.updated([("a", "agent-1", pb.TASK_RUNNING, False)], 1.0)
    assert r.converged
    assert r.next_deadline() <= 901.0
    [implicit] = queries(r.due(901.0))
    assert implicit == Query((), RoundKind.IMPLICIT)
    assert r.converged  # an implicit round does not hold offers back
    [explicit] = queries(r.due(903.0))
    assert explicit.tasks == (("a", "agent-1"),)
    r.updated([("a", "agent-1", pb.TASK_RUNNING, False)], 903.5)
    assert r.progress(904.0).converged


def test_task_stuck_in_staging_is_reconciled_on_its_own() -> None:
    r = make(stuck_timeout=60.0, periodic_interval=0)
    r.start(0.0)
    r.track("slow", "agent-1", pb.TASK_STAGING, 0.0)
    r.track("fine", "agent-1", pb.TASK_RUNNING, 0.0)
    asked = []
    while r.next_deadline() < 100.0:
        now = r.next_deadline()
        asked += [q.tasks for q in queries(r.due(now))]
    assert asked and all(tasks == (("slow", "agent-1"),) for tasks in asked)
    assert len(asked) == 1  # then it waits another stuck_timeout before asking again


def test_reset_holds_offers_until_the_next_round_converges() -> None:
    r = make()
    r.track("a", "agent-1", pb.TASK_RUNNING, 0.0)
    r.start(0.0)
    r.updated([("a", "agent-1", pb.TASK_RUNNING, False)], 1.0)
    assert r.converged
    r.reset()
    assert not r.converged
    r.start(5.0)
    assert not r.converged
    r.updated([("a", "agent-1", pb.TASK_RUNNING, False)], 6.0)
    assert r.converged


def test_tasks_learnt_from_answers_are_tracked() -> None:
    r = make()
    r.start(0.0)
    r.updated([("found", "agent-3", pb.TASK_RUNNING, False)], 0.5)
    assert r.tasks == {"found": ("agent-3", pb.TASK_RUNNING)}


def test_updates_of_one_message_apply_in_order():
    r = make()
    r.track("a", "agent-1", pb.TASK_STAGING, 0.0)
    r.updated([("a", "agent-2", pb.TASK_RUNNING, False), ("b", "agent-1", pb.TASK_RUNNING, False)], 1.0)
    assert r.tasks == {"a": ("agent-2", pb.TASK_RUNNING), "b": ("agent-1", pb.TASK_RUNNING)}
    assert r.agent_of("a") == "agent-2" and r.agent_of("nope") == ""
    r.updated([("a", "", pb.TASK_RUNNING, False), ("a", "", pb.TASK_FINISHED, True)], 2.0)
    assert not r.tracks("a") and r.tracks("b") and r.agent_of("a") == ""


def test_progress_between_rounds_tells_of_the_last_round_instead_of_inventing_one() -> None:
    r = make()
    assert r.progress(5.0) == Progress(0, RoundKind.EXPLICIT, None, 0, 0, None, True)  # no round yet
    r.track("a", "agent-1", pb.TASK_RUNNING, 0.0)
    r.start(10.0)
    r.updated([("a", "agent-1", pb.TASK_RUNNING, False)], 11.0)
    assert r.converged
    idle = r.progress(50.0)
    assert idle == r.progress(99.0)  # the same, whenever asked
    assert (idle.started_at, idle.remaining, idle.converged, idle.attempts) == (10.0, 0, True, 1)
