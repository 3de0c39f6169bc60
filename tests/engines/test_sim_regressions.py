"""Engine bugs the simulator's property tests found (tests/engines/test_sim_properties.py),
each pinned by a test of the engine alone."""
from __future__ import annotations

from corral.protos import corral_pb2 as pb
from engine_helpers import accept, bodies, command_task, feed, new_master, offers, register_agent, resources, sent
from engine_helpers import status_update, subscribe

A1, S1 = "tcp://agent1", "tcp://sched1"


def test_a_task_that_ended_untold_is_dropped_when_its_agent_reregisters_without_it():
    """(seed 2) The agent forwarded STARTING with latest state FINISHED, then restarted
    without the task (a framework that does not checkpoint): the master used to keep the
    task forever (its latest state was terminal, so reregistration skipped it) and
    answered reconciliation with STARTING for ever after."""
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t1", aid)]), 2.0)
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_STARTING, b"u" * 16, latest=pb.TASK_FINISHED), 3.0)
    sent(m)
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value=aid), resources=resources("cpus:4;mem:4096"))
    feed(m, A1, pb.ReregisterAgent(agent=info), 10.0)
    (dropped,) = [u.update.status for u in bodies(m, pb.Update, to=S1)]
    assert dropped.state == pb.TASK_LOST and dropped.reason == pb.TaskStatus.REASON_RECONCILIATION
    assert not m.frameworks[fid].tasks
