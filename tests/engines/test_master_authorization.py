"""The master engine on authenticated links: each message's principal (`Engine.principal`,
which the runtime's dispatcher sets from the connection) decides who speaks for whom,
and the ACLs what each principal may do. A forged sender address changes nothing; a
denial answers with an error naming the principal, the action and its object, changes
nothing and is counted."""
from __future__ import annotations

from typing import Any

import pytest

from corral.engines.authorization import Denied
from corral.engines.master import MasterConfig, MasterEngine
from corral.net import wire
from corral.protos import corral_pb2 as pb
from corral.security.acls import Acls
from engine_helpers import (MASTER, accept, bodies, command_task, feed, framework_info, offers,
                                          resources, sent, status_update, status_updates)

ALICE, BOB = "tcp://alice", "tcp://bob"
AGENT = "tcp://agent1"


def as_(engine: MasterEngine, principal: str | None, sender: str, body: Any, now: float = 0.0) -> None:
    """`body` from `sender`, over a connection of `principal`."""
    engine.principal = principal
    feed(engine, sender, body, now)


def new_master(acls: dict | None = None) -> MasterEngine:
    info = pb.MasterInfo(id="m1", hostname="master", port=5050, transport=MASTER)
    return MasterEngine(info, MasterConfig(), now=0.0, acls=Acls.parse(acls) if acls is not None else None)


def subscribe_as(master: MasterEngine, principal: str, address: str, **info: Any) -> str:
    as_(master, principal, address, pb.Subscribe(framework_info=framework_info(**info), transport=address))
    (reply,) = bodies(master, pb.Subscribed, to=address)
    return reply.framework_id.value


def register_agent_as(master: MasterEngine, principal: str = "agent1", address: str = AGENT) -> str:
    as_(master, principal, address, pb.RegisterAgent(agent=pb.AgentInfo(
        hostname="host1", resources=resources("cpus:4;mem:4096;disk:1000"))))
    (reply,) = bodies(master, pb.AgentRegistered, to=address)
    return reply.agent_id.value


@pytest.fixture
def cluster():
    """A master with an agent and two frameworks of different principals; alice runs a
    task on the agent."""
    master = new_master()
    agent_id = register_agent_as(master)
    alice = subscribe_as(master, "alice", ALICE, name="a")
    bob = subscribe_as(master, "bob", BOB, name="b")
    (offer, *_) = offers(master, 1.0, to=ALICE)
    as_(master, "alice", ALICE, accept(alice, [offer.id.value], [command_task("t1", agent_id)]))
    assert bodies(master, pb.RunTask, to=AGENT)
    return master, agent_id, alice, bob


def test_frameworks_are_bound_to_the_principal_that_subscribed_them(cluster):
    master, _agent_id, alice, bob = cluster
    assert master.frameworks[alice].principal == "alice" and master.frameworks[bob].principal == "bob"
    assert master.frameworks[alice].info.principal == "alice"  # filled in, as Mesos does
    assert master.principal_at(ALICE) == "alice" and master.principal_at(AGENT) == "agent1"


def test_a_forged_sender_address_cannot_kill_acknowledge_or_reconcile_anothers_tasks(cluster):
    master, agent_id, alice, _bob = cluster
    sent(master)
    # bob names alice's address in the header: every call is dropped, nothing answered
    as_(master, "bob", ALICE, pb.Kill(framework_id=pb.FrameworkID(value=alice), task_id=pb.TaskID(value="t1")))
    as_(master, "bob", ALICE, pb.Reconcile(framework_id=pb.FrameworkID(value=alice)))
    as_(master, "bob", ALICE, wire.Acknowledge(alice, [(agent_id, "t1", b"u" * 16)]))
    as_(master, "bob", ALICE, pb.Teardown(framework_id=pb.FrameworkID(value=alice)))
    assert sent(master) == []
    assert master.counters["forged_senders"] == 4
    assert alice in master.frameworks and "t1" in master.frameworks[alice].tasks
    # from her own connection, alice's kill goes through
    as_(master, "alice", ALICE, pb.Kill(framework_id=pb.FrameworkID(value=alice), task_id=pb.TaskID(value="t1")))
    assert bodies(master, pb.KillTask, to=AGENT)


def test_a_forged_agent_address_cannot_inject_updates_nor_replace_the_agent(cluster):
    master, agent_id, alice, _bob = cluster
    sent(master)
    as_(master, "bob", AGENT, status_update(alice, agent_id, "t1", pb.TASK_FINISHED, b"u" * 16))
    as_(master, "bob", AGENT, pb.RegisterAgent(agent=pb.AgentInfo(hostname="evil", resources=resources("cpus:1;mem:1")),
                                               session=b"other"))
    as_(master, "bob", AGENT, pb.UnregisterAgent(agent_id=pb.AgentID(value=agent_id)))
    assert sent(master) == []
    assert master.frameworks[alice].tasks["t1"].state == pb.TASK_STAGING
    assert list(master.agents) == [agent_id]
    assert master.counters["forged_senders"] == 3
    # the agent itself is heard
    as_(master, "agent1", AGENT, status_update(alice, agent_id, "t1", pb.TASK_RUNNING, b"u" * 16))
    assert [u.status.state for u in status_updates(master, to=ALICE)] == [pb.TASK_RUNNING]


def test_another_principal_cannot_take_over_a_framework_or_an_agent(cluster):
    master, agent_id, alice, _bob = cluster
    sent(master)
    mallory = "tcp://mallory"
    as_(master, "bob", mallory, pb.Subscribe(framework_info=framework_info(framework_id=alice), transport=mallory))
    (error,) = bodies(master, pb.Error, to=mallory)
    assert error.fatal and "principal 'alice'" in error.message and "'bob'" in error.message
    assert master.frameworks[alice].transport == ALICE
    as_(master, "bob", mallory, pb.ReregisterAgent(agent=pb.AgentInfo(hostname="h", id=pb.AgentID(value=agent_id),
                                                                      resources=resources("cpus:4;mem:4096"))))
    (error,) = bodies(master, pb.Error, to=mallory)
    assert error.fatal and f"agent {agent_id} was registered by principal 'agent1'" in error.message
    assert master.agents[agent_id].transport == AGENT


def test_after_a_failover_an_agent_reregisters_only_under_the_principal_that_was_admitted():
    """A new leader starts from the registry, which kept who admitted each agent: the
    same agent id from another principal's connection is refused (counted, nothing
    changes, the agent is still awaited), from its own principal it comes back."""
    from corral.engines.master import RecordAgent, RegistryState, apply_to_registry

    old = new_master()
    as_(old, "agent1", AGENT, pb.RegisterAgent(agent=pb.AgentInfo(hostname="host1",
                                                                  resources=resources("cpus:4;mem:4096;disk:1000"))))
    registry = RegistryState()
    for action in old.take_actions():
        if isinstance(action, RecordAgent):
            apply_to_registry(registry, action)
    (agent_id,) = registry.admitted
    assert registry.principals == {agent_id: "agent1"}
    info = pb.MasterInfo(id="m2", hostname="master2", port=5050, transport=MASTER)
    new = MasterEngine(info, MasterConfig(), now=10.0, registry=registry)
    mallory = "tcp://mallory"
    reregister = pb.ReregisterAgent(agent=pb.AgentInfo(hostname="host1", id=pb.AgentID(value=agent_id),
                                                       resources=resources("cpus:4;mem:4096;disk:1000")))
    as_(new, "mallory", mallory, reregister, 11.0)
    (error,) = bodies(new, pb.Error, to=mallory)
    assert error.fatal and f"agent {agent_id} was registered by principal 'agent1'" in error.message
    assert "'mallory' may not reregister it" in error.message
    assert new.agents == {} and agent_id in new.recovering and new.authorizer.denials == {"register_agents": 1}
    assert not [a for a in new.take_actions() if isinstance(a, RecordAgent)]
    as_(new, "agent1", AGENT, reregister, 12.0)
    assert bodies(new, pb.AgentReregistered, to=AGENT)
    assert new.agents[agent_id].principal == "agent1" and not new.recovering


def test_without_authentication_the_registry_principals_do_not_refuse_an_agent():
    """A master restarted without authentication (every principal None) takes back an
    agent a secured master admitted."""
    from corral.engines.master import RegistryState

    agent_id = "m1-S0001"
    registry = RegistryState(admitted={agent_id: pb.AgentInfo(hostname="host1")}, principals={agent_id: "agent1"})
    new = MasterEngine(pb.MasterInfo(id="m2", hostname="m", port=1, transport=MASTER), MasterConfig(), registry=registry)
    as_(new, None, AGENT, pb.ReregisterAgent(agent=pb.AgentInfo(hostname="host1", id=pb.AgentID(value=agent_id),
                                                                resources=resources("cpus:4;mem:4096"))))
    assert bodies(new, pb.AgentReregistered, to=AGENT) and agent_id in new.agents


def test_a_framework_info_naming_another_principal_is_refused():
    master = new_master()
    info = framework_info()
    info.principal = "alice"
    as_(master, "bob", BOB, pb.Subscribe(framework_info=info, transport=BOB))
    (error,) = bodies(master, pb.Error, to=BOB)
    assert error.fatal and "names principal 'alice' but it authenticated as 'bob'" in error.message
    assert master.frameworks == {}


def test_register_frameworks_acl_refuses_a_role_and_changes_nothing():
    master = new_master({"register_frameworks": [
        {"principals": {"values": ["alice"]}, "roles": {"values": ["batch"]}},
        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]})
    as_(master, "bob", BOB, pb.Subscribe(framework_info=framework_info(role="batch"), transport=BOB))
    (error,) = bodies(master, pb.Error, to=BOB)
    assert error.fatal
    assert error.message == ("framework rejected: principal 'bob' is not authorized to register_frameworks "
                             "for role 'batch'")
    assert master.frameworks == {} and master.authorizer.denials == {"register_frameworks": 1}
    assert subscribe_as(master, "alice", ALICE, role="batch")


def test_register_agents_acl():
    master = new_master({"register_agents": [{"principals": {"values": ["agent1"]}, "agents": {"type": "ANY"}}],
                         "permissive": False})
    as_(master, "stranger", "tcp://x", pb.RegisterAgent(agent=pb.AgentInfo(hostname="h",
                                                                            resources=resources("cpus:1;mem:64"))))
    (error,) = bodies(master, pb.Error, to="tcp://x")
    assert "principal 'stranger' is not authorized to register_agents for agent 'h'" in error.message
    assert master.agents == {}
    assert register_agent_as(master)


def test_run_tasks_acl_fails_the_task_with_task_error_and_returns_its_resources():
    master = new_master({"run_tasks": [{"principals": {"values": ["alice"]}, "users": {"values": ["u"]}},
                                       {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]})
    agent_id = register_agent_as(master)
    alice = subscribe_as(master, "alice", ALICE)
    (offer, *_) = offers(master, 1.0, to=ALICE)
    as_root = command_task("root-task", agent_id)
    as_root.command.user = "root"
    as_(master, "alice", ALICE, accept(alice, [offer.id.value], [command_task("ok", agent_id), as_root]))
    updates = {u.status.task_id.value: u.status for u in status_updates(master, to=ALICE)}
    assert updates["root-task"].state == pb.TASK_ERROR
    assert updates["root-task"].reason == pb.TaskStatus.REASON_TASK_UNAUTHORIZED
    assert updates["root-task"].message == "principal 'alice' is not authorized to run_tasks for user 'root'"
    assert list(master.frameworks[alice].tasks) == ["ok"]
    assert master.authorizer.denials == {"run_tasks": 1}


def dynamic(text: str, role: str) -> list[pb.Resource]:
    out = resources(text)
    for r in out:
        r.reservations.add(type=pb.Resource.ReservationInfo.DYNAMIC, role=role)
        r.role = role
    return out


def accept_ops(master: MasterEngine, principal: str, address: str, fid: str, offer: pb.Offer,
               *ops: pb.Offer.Operation) -> None:
    msg = pb.Accept(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id], operations=list(ops))
    msg.filters.refuse_seconds = 0
    as_(master, principal, address, msg)


def test_reserve_and_volume_operations_are_authorized_and_record_their_principal():
    Op = pb.Offer.Operation
    master = new_master({"reserve_resources": [{"principals": {"values": ["alice"]}, "roles": {"values": ["web"]}},
                                               {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
                         "unreserve_resources": [{"principals": {"type": "ANY"},
                                                  "reserver_principals": {"values": ["carol"]}},
                                                 {"principals": {"type": "ANY"},
                                                  "reserver_principals": {"type": "NONE"}}]})
    agent_id = register_agent_as(master)
    alice = subscribe_as(master, "alice", ALICE, role="web")
    (offer,) = offers(master, 1.0, to=ALICE)
    accept_ops(master, "alice", ALICE, alice, offer, Op(type=Op.RESERVE, reserve=Op.Reserve(
        resources=dynamic("cpus:1;disk:100", "web"))))
    assert bodies(master, pb.CheckpointResources, to=AGENT)
    reservations = [r.reservations[-1] for r in master.agents[agent_id].total.to_protos() if r.reservations]
    assert [(r.role, r.principal) for r in reservations] == [("web", "alice"), ("web", "alice")]
    # a volume that names another principal as its creator is refused
    (offer,) = offers(master, 2.0, to=ALICE)
    (disk,) = [r for r in offer.resources if r.name == "disk" and r.reservations]
    volume = pb.Resource()
    volume.CopyFrom(disk)
    volume.disk.persistence.id = "v1"
    volume.disk.persistence.principal = "bob"
    volume.disk.volume.container_path = "data"
    volume.disk.volume.mode = pb.Volume.RW
    accept_ops(master, "alice", ALICE, alice, offer, Op(type=Op.CREATE, create=Op.Create(volumes=[volume])))
    (error,) = bodies(master, pb.Error, to=ALICE)
    assert error.message == "CREATE rejected: the persistent volume names principal 'bob', not the framework's 'alice'"
    # alice's own reservation may be unreserved only by... carol's rule: denied, nothing changes
    (offer,) = offers(master, 3.0, to=ALICE)
    mine = [r for r in offer.resources if r.reservations]
    accept_ops(master, "alice", ALICE, alice, offer, Op(type=Op.UNRESERVE, unreserve=Op.Unreserve(resources=mine)))
    (error,) = bodies(master, pb.Error, to=ALICE)
    assert error.message == ("UNRESERVE rejected: principal 'alice' is not authorized to unreserve_resources "
                             "for reserver principal 'alice'")
    assert len([r for r in master.agents[agent_id].total.to_protos() if r.reservations]) == 2
    assert master.authorizer.denials == {"unreserve_resources": 1}


def test_reserve_acl_refuses_a_role():
    Op = pb.Offer.Operation
    master = new_master({"reserve_resources": [{"principals": {"values": ["alice"]}, "roles": {"values": ["web"]}},
                                               {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]})
    agent_id = register_agent_as(master)
    bob = subscribe_as(master, "bob", BOB, role="web")
    (offer,) = offers(master, 1.0, to=BOB)
    accept_ops(master, "bob", BOB, bob, offer, Op(type=Op.RESERVE, reserve=Op.Reserve(resources=dynamic("mem:64", "web"))))
    (error,) = bodies(master, pb.Error, to=BOB)
    assert error.message == "RESERVE rejected: principal 'bob' is not authorized to reserve_resources for role 'web'"
    assert not master.agents[agent_id].total.reserved() and master.authorizer.denials == {"reserve_resources": 1}


def test_kill_tasks_acl():
    master = new_master({"kill_tasks": [{"principals": {"values": ["alice"]},
                                         "framework_principals": {"type": "NONE"}}]})
    agent_id = register_agent_as(master)
    alice = subscribe_as(master, "alice", ALICE)
    (offer, *_) = offers(master, 1.0, to=ALICE)
    as_(master, "alice", ALICE, accept(alice, [offer.id.value], [command_task("t1", agent_id)]))
    sent(master)
    as_(master, "alice", ALICE, pb.Kill(framework_id=pb.FrameworkID(value=alice), task_id=pb.TaskID(value="t1")))
    (error,) = bodies(master, pb.Error, to=ALICE)
    assert "principal 'alice' is not authorized to kill_tasks for framework principal 'alice'" in error.message
    assert not bodies(master, pb.KillTask)


@pytest.mark.parametrize("call, action", [
    (lambda m: m.set_weights([("web", 2.0)], 0.0, principal="viewer"), "update_weights"),
    (lambda m: m.set_quota("web", None, 0.0, principal="viewer"), "update_quotas"),
    (lambda m: m.mark_gone("S1", 0.0, principal="viewer"), "mark_agents_gone"),
])
def test_operator_calls_are_authorized_for_the_http_principal(call, action):
    master = new_master({"update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
                         "update_quotas": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
                         "mark_agents_gone": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
                         "permissive": False})
    with pytest.raises(Denied, match=f"principal 'viewer' is not authorized to {action}"):
        call(master)
    assert master.weights == {} and master.quotas == {} and master.gone == set()
    assert master.take_actions() == []
    assert master.authorizer.denials == {action: 1}
    assert master.set_weights([("web", 2.0)], 0.0, principal="ops") == ""
    assert master.weights == {"web": 2.0}


def test_without_authentication_every_principal_is_none_and_nothing_is_refused():
    master = new_master()
    agent_id = register_agent_as(master, principal=None)  # type: ignore[arg-type]
    fid = subscribe_as(master, None, ALICE)  # type: ignore[arg-type]
    assert master.frameworks[fid].principal is None and master.agents[agent_id].principal is None
    assert master.principal_at(ALICE) is None
    assert not master.frameworks[fid].info.principal


def test_state_shows_the_frameworks_and_tasks_the_viewer_may_see():
    master = new_master({"view_frameworks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                                             {"principals": {"type": "ANY"}, "users": {"values": ["u"]}},
                                             {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}],
                         "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                                        {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]})
    agent_id = register_agent_as(master)
    alice = subscribe_as(master, "alice", ALICE, name="a")  # user "u"
    as_(master, "bob", BOB, pb.Subscribe(framework_info=pb.FrameworkInfo(user="root", name="b"), transport=BOB))
    (offer, *_) = offers(master, 1.0, to=ALICE)
    as_(master, "alice", ALICE, accept(alice, [offer.id.value], [command_task("t1", agent_id)]))
    ops = master.snapshot("ops")
    assert {f["name"]: len(f["tasks"]) for f in ops["frameworks"]} == {"a": 1, "b": 0}
    viewer = master.snapshot("viewer")
    assert {f["name"]: len(f["tasks"]) for f in viewer["frameworks"]} == {"a": 0}
    assert master.authorizer.denials == {}  # what a view hides is not a denial
