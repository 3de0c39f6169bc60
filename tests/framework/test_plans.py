"""corral.framework.plans: statuses sum up, strategies pace the steps, interrupts hold new work."""
from corral.framework.plans import Phase, Plan, Status, Step, Strategy, summarize


def test_phase_and_plan_statuses_sum_up_their_children():
    assert summarize([Status.COMPLETE, Status.COMPLETE]) is Status.COMPLETE
    assert summarize([Status.PENDING, Status.PENDING]) is Status.PENDING
    assert summarize([Status.COMPLETE, Status.PENDING]) is Status.IN_PROGRESS
    assert summarize([Status.STARTING, Status.PENDING]) is Status.IN_PROGRESS
    assert summarize([Status.COMPLETE, Status.ERROR]) is Status.ERROR
    assert summarize([]) is Status.COMPLETE


def test_serial_runs_one_step_at_a_time_in_order_and_parallel_runs_all():
    steps = [Step("a", Status.COMPLETE), Step("b", Status.STARTING), Step("c")]
    assert [s.name for s in Phase("p", steps, Strategy.SERIAL).candidates()] == ["b"]
    assert [s.name for s in Phase("p", steps, Strategy.PARALLEL).candidates()] == ["b", "c"]
    plan = Plan("deploy", [Phase("one", [Step("x", Status.PENDING)]), Phase("two", [Step("y")])])
    assert [s.name for s in plan.candidates()] == ["x"]  # the second phase waits for the first
    assert plan.step("y") is not None and plan.step("z") is None


def test_an_interrupted_plan_starts_nothing_new_and_shows_waiting():
    plan = Plan("deploy", [Phase("p", [Step("a", Status.STARTING), Step("b")], Strategy.PARALLEL)], interrupted=True)
    assert [s.name for s in plan.candidates()] == ["a"]  # the step under way finishes
    assert plan.status is Status.WAITING
    plan.interrupted = False
    assert [s.name for s in plan.candidates()] == ["a", "b"]
    view = plan.to_dict()
    assert view["status"] == "IN_PROGRESS" and view["phases"][0]["steps"][1] == {
        "name": "b", "status": "PENDING", "message": ""}
