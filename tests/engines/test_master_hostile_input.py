"""The master engine fed well-framed but hostile messages: every message type it handles,
with fields drawn from pools of known and unknown ids, bad roles and resources, odd
numbers (NaN, infinities, negatives), missing required fields and repeated entries, from
its agent, its framework and strangers. No handler may raise, and the master must keep
a consistent view and keep serving: its state still renders, and a new agent and
framework still get offers.

Deterministic: the messages come from `random.Random(seed)`; a failing seed names the
message that broke it.
"""
from __future__ import annotations

import json

import pytest

from corral.protos import corral_pb2 as pb
from corral.resources import Resources

from engine_helpers import accept, command_task, new_master, offers, register_agent, sent, subscribe
from hostile import SEEDS, bombard

A1, A2, S1, S2, STRANGER = "tcp://agent1", "tcp://agent2", "tcp://sched1", "tcp://sched2", "tcp://stranger"


def _cluster():
    """A master with an agent, a framework, an outstanding offer and a running task."""
    m = new_master()
    aid = register_agent(m, A1, res="cpus:8;mem:8192;disk:1000;ports:[31000-32000]")
    fid = subscribe(m, S1)
    first, = offers(m, 1.0, to=S1)
    m.handle(S1, accept(fid, [first.id.value], [command_task("t1", aid, "cpus:1;mem:128")]), 2.0)
    sent(m)
    offers(m, 3.0, to=S1)  # one outstanding again (the rest of the agent)
    return m, aid, fid


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_messages_neither_raise_nor_corrupt_the_master(seed):
    m, aid, fid = _cluster()
    now = bombard(m, seed, [aid, fid, "t1", *m.offers], [A1, S1, STRANGER], 4.0)
    json.dumps(m.snapshot(), default=str)  # the state endpoint still renders
    # the master still serves: a new framework subscribes, a new agent's resources are offered
    new_aid = register_agent(m, A2, res="cpus:2;mem:2048", now=now)
    assert new_aid and m.agents[new_aid].transport == A2
    new_fid = subscribe(m, S2, now=now)
    assert m.frameworks[new_fid].connected
    got = offers(m, now + 10.0)
    assert new_aid in {o.agent_id.value for o in got}, "the new agent's resources are offered"
    # and its books balance: on every agent, what is free and what frameworks hold make
    # up the agent's total; every outstanding offer names a live agent and framework
    for agent in m.agents.values():
        held = [m.allocator.allocated(f).get(agent.id) for f in m.frameworks]
        assert sum((h for h in held if h is not None), m.allocator.available(agent.id)) == agent.total, agent.id
    for offer in m.offers.values():
        assert offer.agent_id in m.agents and offer.framework_id in m.frameworks


# ---------------------------------------------------------------- what the seeds found


def test_a_subscribe_naming_another_transport_than_its_sender_is_refused():
    m = new_master()
    info = pb.FrameworkInfo(user="u", name="fw")
    m.handle(S1, pb.Subscribe(framework_info=info, transport=S2), 0.0)
    (to, error), = sent(m)
    assert to == S1 and error.fatal and S2 in error.message
    assert not m.frameworks
    m.handle(S1, pb.Subscribe(framework_info=info), 0.0)  # no transport: served where it came from
    (to, subscribed), = sent(m)
    assert to == S1 and type(subscribed) is pb.Subscribed
    assert m.frameworks[subscribed.framework_id.value].transport == S1


def test_a_reregistration_without_an_agent_id_is_refused_and_leaves_no_agent():
    m = new_master()
    info = pb.AgentInfo(hostname="h", resources=Resources.parse("cpus:1;mem:1").to_protos())
    m.handle(STRANGER, pb.ReregisterAgent(agent=info), 0.0)
    (to, error), = sent(m)
    assert to == STRANGER and error.fatal and "agent id" in error.message
    assert not m.agents
    aid = register_agent(m, A2, res="cpus:2;mem:2048")  # (an agent with an empty id took every newcomer's place)
    assert aid and m.agents[aid].transport == A2


@pytest.mark.parametrize("call", [pb.Suppress, pb.Revive])
def test_suppress_and_revive_naming_a_role_not_subscribed_answer_an_error(call):
    m, aid, fid = _cluster()
    before = json.dumps(m.allocator.snapshot(), sort_keys=True)
    m.handle(S1, call(framework_id=pb.FrameworkID(value=fid), roles=["*", "db"]), 4.0)
    (to, error), = sent(m, pb.Error)
    assert to == S1 and not error.fatal and "'db'" in error.message
    assert json.dumps(m.allocator.snapshot(), sort_keys=True) == before
    m.handle(S1, call(framework_id=pb.FrameworkID(value=fid), roles=["*"]), 5.0)
    assert not sent(m, pb.Error)
