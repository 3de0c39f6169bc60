"""The master after a restart (its registry remembers admitted agents), agents marked gone
by an operator, kills held for absent agents, and operator reservations."""
from __future__ import annotations

from corral.net import wire
from corral.engines.base import Send
from corral.engines.master import (AgentRecordState, ForgetFramework, MasterConfig, MasterEngine, RecordAgent,
                                  RecordFramework, RecordQuota, RecordWeight, RegistryState, apply_to_registry)
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

from engine_helpers import (
    MASTER, bodies, command_task, feed, new_master, offers, others, register_agent, resources, sent, status_updates, subscribe,
)
from engine_helpers import updates_in

S1, A1, A2 = "tcp://sched1", "tcp://agent1", "tcp://agent2"
R = pb.TaskStatus


def restarted_master(*agent_ids: str, **config) -> MasterEngine:
    info = pb.MasterInfo(id="m2", hostname="master", port=5050, transport=MASTER)
    registry = RegistryState(admitted={a: pb.AgentInfo(hostname=a, id=pb.AgentID(value=a)) for a in agent_ids})
    return MasterEngine(info, MasterConfig(**config), now=0.0, registry=registry)


def reregister(m, address, agent_id, now, tasks=(), fid="f1"):
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value=agent_id), resources=resources("cpus:4;mem:4096"))
    msg = pb.ReregisterAgent(agent=info)
    for tid, state in tasks:
        report = msg.tasks.add(task=command_task(tid, agent_id), state=state)
        report.framework_id.value = fid
    feed(m, address, msg, now)


def reconcile(m, fid, tid, agent_id, now):
    msg = pb.Reconcile(framework_id=pb.FrameworkID(value=fid))
    msg.tasks.add(task_id=pb.TaskID(value=tid), agent_id=pb.AgentID(value=agent_id))
    feed(m, S1, msg, now)
    return [u.status for u in status_updates(m, to=S1)]


def test_tasks_on_agents_not_yet_back_get_no_answer_then_the_truth():
    m = restarted_master("a1")
    fid = subscribe(m, S1, framework_id="f1")
    assert reconcile(m, fid, "t1", "a1", 1.0) == []  # nothing yet
    reregister(m, A1, "a1", 2.0, tasks=[("t1", pb.TASK_RUNNING)])
    (answer,) = [u.status for u in status_updates(m, to=S1)]  # answered once the agent is back
    assert answer.state == pb.TASK_RUNNING and answer.reason == R.REASON_RECONCILIATION
    (answer,) = reconcile(m, fid, "t1", "a1", 3.0)
    assert answer.state == pb.TASK_RUNNING and answer.reason == R.REASON_RECONCILIATION


def test_agents_that_do_not_come_back_in_time_become_unreachable():
    m = restarted_master("a1", agent_reregister_timeout=600.0)
    fid = subscribe(m, S1, framework_id="f1", partition_aware=True)
    m.tick(600.0)
    records = others(m.take_actions(), RecordAgent)
    assert [(r.agent_id, r.record) for r in records] == [("a1", AgentRecordState.UNREACHABLE)]
    (answer,) = reconcile(m, fid, "t1", "a1", 601.0)
    assert answer.state == pb.TASK_UNREACHABLE


def test_offers_wait_until_most_agents_are_back():
    m = restarted_master("a1", "a2", "a3", "a4", "a5")
    subscribe(m, S1)
    reregister(m, A1, "a1", 1.0)
    reregister(m, A2, "a2", 1.0)
    reregister(m, "tcp://agent3", "a3", 1.0)
    assert offers(m, 5.0, to=S1) == []  # 3 of 5 < 80%
    reregister(m, "tcp://agent4", "a4", 6.0)
    assert len(offers(m, 8.0, to=S1)) == 4


def test_an_agent_marked_gone_reports_its_tasks_and_may_not_come_back():
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1, partition_aware=True)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, pb.Accept(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id], operations=[
        pb.Offer.Operation(type=pb.Offer.Operation.LAUNCH,
                           launch=pb.Offer.Operation.Launch(task_infos=[command_task("t1", aid)]))]), 2.0)
    sent(m)
    assert m.mark_gone(aid, 3.0) == ""
    out = m.take_actions()
    (update,) = [x.status for a in out if getattr(a, "to", "") == S1 and isinstance(a.body, wire.Updates) for x in updates_in(a.body)]
    assert update.state == pb.TASK_GONE_BY_OPERATOR and update.reason == R.REASON_AGENT_REMOVED_BY_OPERATOR
    assert [r.record for r in others(out, RecordAgent)] == [AgentRecordState.GONE]
    (answer,) = reconcile(m, fid, "t1", aid, 4.0)
    assert answer.state == pb.TASK_GONE_BY_OPERATOR
    reregister(m, A1, aid, 5.0)
    (error,) = bodies(m, pb.Error, to=A1)
    assert error.fatal and "gone" in error.message
    assert m.mark_gone("nobody", 6.0) == "unknown agent 'nobody'"


def test_kills_for_an_absent_agent_are_sent_when_it_is_back():
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, pb.Accept(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id], operations=[
        pb.Offer.Operation(type=pb.Offer.Operation.LAUNCH,
                           launch=pb.Offer.Operation.Launch(task_infos=[command_task("t1", aid)]))]), 2.0)
    sent(m)
    from corral.net.protocol import PeerEvent
    m.peer_event(A1, PeerEvent.DISCONNECTED, 3.0)
    feed(m, S1, pb.Kill(framework_id=pb.FrameworkID(value=fid), task_id=pb.TaskID(value="t1")), 4.0)
    assert bodies(m, pb.KillTask, to=A1) == []
    reregister(m, A1, aid, 5.0, tasks=[("t1", pb.TASK_RUNNING)], fid=fid)
    (kill,) = bodies(m, pb.KillTask, to=A1)
    assert kill.task_id.value == "t1"


def test_operator_reservation_of_unallocated_resources():
    m = new_master()
    aid = register_agent(m, A1)
    subscribe(m, S1)
    offers(m, 1.0, to=S1)  # everything is offered: the reservation rescinds it first
    wanted = resources("cpus:1;mem:512")
    for r in wanted:
        r.reservations.add(type=pb.Resource.ReservationInfo.DYNAMIC, role="db")
        r.role = "db"
    assert m.operator_reservation(aid, wanted, unreserve=False, now=2.0) == ""
    out = sent(m)
    assert [b for _, b in out if isinstance(b, pb.Rescind)]
    (checkpoint,) = [b for _, b in out if isinstance(b, pb.CheckpointResources)]
    assert Resources.from_protos(checkpoint.resources).reserved("db") == Resources.from_protos(wanted)
    too_much = resources("cpus:99")
    too_much[0].reservations.add(type=pb.Resource.ReservationInfo.DYNAMIC, role="db")
    assert "cpus:99" in m.operator_reservation(aid, too_much, unreserve=False, now=3.0)
    assert m.operator_reservation(aid, wanted, unreserve=True, now=4.0) == ""
    assert m.agents[aid].total == Resources.parse("cpus:4;mem:4096")


def reregister_with(m, address, agent_id, agent_resources, reports, now):
    """`reports`: (task id, framework id, resources, state)."""
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value=agent_id), resources=resources(agent_resources))
    msg = pb.ReregisterAgent(agent=info)
    for tid, fid, res, state in reports:
        report = msg.tasks.add(task=command_task(tid, agent_id, res), state=state)
        report.framework_id.value = fid
    feed(m, address, msg, now)


def test_a_new_master_holds_what_the_reported_running_tasks_use_by_framework():
    m = restarted_master("a1")
    reregister_with(m, A1, "a1", "cpus:8;mem:4096", [
        ("t1", "f1", "cpus:1;mem:100", pb.TASK_RUNNING),
        ("t2", "f2", "cpus:2;mem:200", pb.TASK_RUNNING),
        ("t3", "f1", "cpus:0.5;mem:50", pb.TASK_STARTING),
        ("t4", "f1", "cpus:4;mem:400", pb.TASK_FINISHED),  # ended: holds nothing
    ], 1.0)
    assert m.allocator.allocated("f1") == {"a1": Resources.parse("cpus:1.5;mem:150")}
    assert m.allocator.allocated("f2") == {"a1": Resources.parse("cpus:2;mem:200")}
    assert m.allocator.available("a1") == Resources.parse("cpus:4.5;mem:3746")
    assert m.agents["a1"].used == Resources.parse("cpus:3.5;mem:350")
    assert m.counters["allocation_conflicts"] == 0


def test_reported_tasks_that_do_not_all_fit_are_refused_one_by_one():
    m = restarted_master("a1")
    reregister_with(m, A1, "a1", "cpus:2;mem:4096", [
        ("t1", "f1", "cpus:1;mem:100", pb.TASK_RUNNING),
        ("t2", "f1", "cpus:3;mem:100", pb.TASK_RUNNING),  # more than the agent has left
        ("t3", "f1", "cpus:1;mem:100", pb.TASK_RUNNING),
    ], 1.0)
    assert m.counters["allocation_conflicts"] == 1
    assert m.allocator.allocated("f1") == {"a1": Resources.parse("cpus:2;mem:200")}  # t1 and t3
    assert set(m.frameworks["f1"].tasks) == {"t1", "t2", "t3"}  # all known, as the agent reported them


def test_two_reported_tasks_claiming_one_persistent_volume_do_not_break_the_reregistration():
    volume = pb.Resource(name="disk", type=pb.Value.SCALAR, scalar=pb.Value.Scalar(value=100), role="db")
    volume.disk.persistence.id = "v1"
    volume.disk.volume.container_path = "data"
    m = restarted_master("a1")
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value="a1"), resources=resources("cpus:8;mem:4096") + [volume])
    msg = pb.ReregisterAgent(agent=info, frameworks=[pb.FrameworkInfo(user="u", name="db", role="db",
                                                                      id=pb.FrameworkID(value="f1"))])
    for tid in ("t1", "t2"):
        task = command_task(tid, "a1", "cpus:1;mem:100")
        task.resources.append(volume)
        report = msg.tasks.add(task=task, state=pb.TASK_RUNNING)
        report.framework_id.value = "f1"
    feed(m, A1, msg, 1.0)
    assert (A1, pb.AgentReregistered) in [(to, type(body)) for to, body in sent(m)]
    assert m.counters["allocation_conflicts"] == 1  # the second claim of v1
    assert m.allocator.allocated("f1") == {"a1": Resources.from_protos(task.resources)}
    assert set(m.frameworks["f1"].tasks) == {"t1", "t2"}


def role_view(m, name):
    return next((r for r in m.allocator.snapshot()["roles"] if r["name"] == name), None)


def test_operator_weights_are_checked_first_then_kept_in_the_registry_and_given_to_the_allocator():
    m = new_master()
    m.take_actions()
    assert m.set_weights([("web", 2), ("db", 0.5)], 1.0) == ""
    assert [a for a in m.take_actions() if isinstance(a, RecordWeight)] == [RecordWeight("web", 2.0),
                                                                               RecordWeight("db", 0.5)]
    assert role_view(m, "web")["weight"] == 2.0 and m.weights == {"web": 2.0, "db": 0.5}
    for bad, named in (([("ok", 3), ("a//b", 1)], "a//b"), ([("ok", 3), ("x", -2)], "-2"), ([("x", True)], "True")):
        problem = m.set_weights(bad, 2.0)
        assert named in problem and "ok" not in m.weights  # nothing set when one is wrong
        assert not [a for a in m.take_actions() if isinstance(a, RecordWeight)]


def test_operator_quotas_are_kept_in_the_registry_and_given_to_the_allocator():
    m = new_master()
    m.take_actions()
    assert m.set_quota("db", Resources.parse("cpus:2"), 1.0) == ""
    assert [a for a in m.take_actions() if isinstance(a, RecordQuota)] == [RecordQuota("db", Resources.parse("cpus:2"))]
    assert role_view(m, "db")["quota"] == {"cpus": 2.0}
    assert "a//b" in m.set_quota("a//b", Resources.parse("cpus:1"), 2.0)
    assert not m.take_actions() and set(m.quotas) == {"db"}
    assert m.set_quota("db", None, 3.0) == ""
    assert m.take_actions() == [RecordQuota("db", None)] and m.quotas == {} and role_view(m, "db") is None


def test_a_restarted_master_applies_the_weights_and_quotas_its_registry_kept():
    state = RegistryState()
    for action in (RecordWeight("web", 3.0), RecordQuota("web", Resources.parse("mem:64")), RecordWeight("db", 2.0),
                   RecordQuota("db", Resources.parse("cpus:1")), RecordQuota("db", None)):
        apply_to_registry(state, action)
    assert state.weights == {"web": 3.0, "db": 2.0} and state.quotas == {"web": Resources.parse("mem:64")}
    info = pb.MasterInfo(id="m2", hostname="master", port=5050, transport=MASTER)
    m = MasterEngine(info, MasterConfig(), now=0.0, registry=state)
    assert role_view(m, "web")["weight"] == 3.0 and role_view(m, "web")["quota"] == {"mem": 64.0}
    assert role_view(m, "db")["weight"] == 2.0 and role_view(m, "db")["quota"] is None


def test_frameworks_are_kept_in_the_registry_when_they_subscribe_and_forgotten_when_removed():
    m = new_master()
    feed(m, S1, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw", failover_timeout=30.0),
                             transport=S1), 0.0)
    actions = m.take_actions()
    (recorded,) = others(actions, RecordFramework)
    (subscribed,) = [a.body for a in actions if isinstance(a, Send) and isinstance(a.body, pb.Subscribed)]
    # recorded before it is answered, with its id and failover timeout
    assert actions.index(recorded) < next(i for i, a in enumerate(actions) if isinstance(a, Send))
    assert recorded.framework_id == subscribed.framework_id.value == recorded.info.id.value
    assert recorded.info.failover_timeout == 30.0
    feed(m, S1, pb.Teardown(framework_id=subscribed.framework_id), 1.0)
    assert [a.framework_id for a in others(m.take_actions(), ForgetFramework)] == [recorded.framework_id]


def test_a_new_master_removes_a_framework_of_its_registry_that_never_comes_back_in_time():
    state = RegistryState(frameworks={"f1": pb.FrameworkInfo(user="u", name="gone", id=pb.FrameworkID(value="f1"),
                                                            failover_timeout=30.0),
                                      "f2": pb.FrameworkInfo(user="u", name="back", id=pb.FrameworkID(value="f2"),
                                                            failover_timeout=30.0)},
                          admitted={"a1": pb.AgentInfo(hostname="a1", id=pb.AgentID(value="a1"))})
    info = pb.MasterInfo(id="m2", hostname="master", port=5050, transport=MASTER)
    m = MasterEngine(info, MasterConfig(framework_reregister_timeout=10.0), now=100.0, registry=state)
    assert {fid: fw.connected for fid, fw in m.frameworks.items()} == {"f1": False, "f2": False}
    reregister(m, A1, "a1", 101.0, tasks=[("t1", pb.TASK_RUNNING)], fid="f1")
    m.take_actions()
    assert subscribe(m, S1, 110.0, framework_id="f2") == "f2"
    m.tick(129.9)
    assert not others(m.take_actions(), ForgetFramework)
    m.tick(130.0)  # the failover timeout, counted from the new master's start
    actions = m.take_actions()
    assert [a.framework_id for a in others(actions, ForgetFramework)] == ["f1"]
    assert [b.framework_id.value for a in actions if isinstance(a, Send)
            for b in [a.body] if isinstance(b, pb.ShutdownFramework)] == ["f1"]
    assert set(m.frameworks) == {"f2"} and not m.agents["a1"].tasks


def test_a_recovered_framework_has_at_least_the_reregister_timeout_to_come_back():
    state = RegistryState(frameworks={"f1": pb.FrameworkInfo(user="u", name="no timeout", id=pb.FrameworkID(value="f1"))})
    info = pb.MasterInfo(id="m2", hostname="master", port=5050, transport=MASTER)
    m = MasterEngine(info, MasterConfig(framework_reregister_timeout=60.0), now=0.0, registry=state)
    m.tick(59.9)
    assert "f1" in m.frameworks and not others(m.take_actions(), ForgetFramework)
    m.tick(60.0)
    assert "f1" not in m.frameworks and others(m.take_actions(), ForgetFramework)


def test_questions_about_tasks_of_agents_not_yet_back_are_answered_once_they_are():
    m = restarted_master("a1", "a2", "a3")
    fid = subscribe(m, S1, framework_id="f1", partition_aware=True)
    assert reconcile(m, fid, "t1", "a1", 1.0) == [] and reconcile(m, fid, "t2", "a2", 1.0) == []
    assert reconcile(m, fid, "t3", "a3", 1.0) == []
    reregister(m, A1, "a1", 2.0, tasks=[("t1", pb.TASK_RUNNING)])
    (answer,) = [u.status for u in status_updates(m, to=S1)]  # the truth, as soon as a1 is back
    assert (answer.task_id.value, answer.state, answer.reason) == ("t1", pb.TASK_RUNNING, R.REASON_RECONCILIATION)
    assert m.mark_gone("a2", 3.0) == ""
    (answer,) = [u.status for u in status_updates(m, to=S1)]
    assert (answer.task_id.value, answer.state) == ("t2", pb.TASK_GONE_BY_OPERATOR)
    m.tick(600.0)  # a3 never comes back: unreachable
    (answer,) = [u.status for u in status_updates(m, to=S1)]
    assert (answer.task_id.value, answer.state) == ("t3", pb.TASK_UNREACHABLE)
    assert not m.deferred_answers
