"""Engine bugs the simulator's property tests found (tests/engines/test_sim_properties.py),
each pinned by a test of the engine alone."""
from __future__ import annotations

from corral.net import wire
from corral.engines.agent import AgentConfig, AgentEngine
from corral.engines.base import MasterLost, Send
from corral.net.protocol import PeerEvent
from corral.protos import corral_pb2 as pb
from engine_helpers import MASTER, accept, bodies, command_task, feed, new_master, offers, register_agent, resources, sent
from engine_helpers import status_update, subscribe, updates_in

A1, S1, S2 = "tcp://agent1", "tcp://sched1", "tcp://sched2"


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
    lost = _agent_settles(m, fid, aid, 11.0)
    assert lost.state == pb.TASK_LOST
    assert not m.frameworks[fid].tasks


def _agent_settles(m, fid, aid, now):
    """After a reregistration that did not report t1, the master asks the agent about it
    (ReconcileTasks) instead of deciding from the report, which may predate a launch; the
    agent, not knowing t1, answers with a reliable LOST (DROPPED for partition-aware
    frameworks); the framework's ack of it ends the task. Returns what the framework got."""
    out = sent(m)
    (ask,) = [b for to, b in out if to == A1 and isinstance(b, pb.ReconcileTasks)]
    assert [t.value for t in ask.task_ids] == ["t1"] and ask.framework.id.value == fid
    assert not [b for to, b in out if to == S1 and isinstance(b, wire.Updates)]
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_LOST, b"d" * 16), now)
    (lost,) = [x.status for u in bodies(m, wire.Updates, to=S1) for x in updates_in(u)]
    feed(m, S1, wire.Acknowledge(fid, [(aid, "t1", b"d" * 16)]), now + 1)
    return lost


def _agent_engine():
    import random

    from corral.engines.agent import AgentConfig, AgentEngine

    info = pb.AgentInfo(hostname="h1", resources=resources("cpus:4;mem:4096"))
    return AgentEngine(info, A1, AgentConfig(), random.Random(7))


def test_a_launch_is_not_run_again_when_a_retried_registration_is_answered_late():
    """(seeds 19, 51, 63, 159, 172) The master's replies to the agent were slow: the
    agent retried its registration while the first reply and a launch were on their way.
    The master used to resend every launch the agent had not reported on with its answer
    to the retry; that copy reached the agent after the task had ended, and the agent ran
    the task a second time (STARTING after FAILED at the scheduler)."""
    from corral.engines.agent import LaunchExecutor
    from engine_helpers import MASTER, advance, others, roundtrip

    m = new_master()
    agent = _agent_engine()
    agent.connect(MASTER, 0.0)
    advance(agent, 1.0)
    (first,) = bodies(agent, pb.RegisterAgent, to=MASTER)
    feed(m, A1, first, 1.0)
    late = sent(m, to=A1)  # AgentRegistered, then (below) RunTask: both still on their way
    fid = subscribe(m, S1)
    (offer,) = offers(m, 2.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t1", m.agents_by_transport[A1], command="exit 1")]), 2.0)
    late += sent(m, to=A1)
    assert [type(b) for _, b in late] == [pb.AgentRegistered, pb.RunTask]
    advance(agent, 30.0)  # no reply yet: the agent retries
    retries = bodies(agent, pb.RegisterAgent, to=MASTER)
    assert retries
    for retry in retries:
        feed(m, A1, retry, 30.0)
    later = sent(m, to=A1)
    assert [type(b) for _, b in later] == [pb.AgentRegistered] * len(retries)

    for _, body in late:
        agent.handle(MASTER, roundtrip(body), 31.0)
    (launched,) = others(agent.take_actions(), LaunchExecutor)
    key = (fid, "t1")
    agent.tasks[key].state = pb.TASK_FAILED  # the task ran and ended meanwhile
    for _, body in later:
        agent.handle(MASTER, roundtrip(body), 32.0)
    assert not others(agent.take_actions(), LaunchExecutor)


def test_a_task_whose_terminal_update_went_unacknowledged_is_forgotten_when_its_agent_reregisters_without_it():
    """(seeds 20, 56, 62, 122, 129, 147, 155, 186) The agent forwarded FINISHED (the
    head of the task's stream); the relay to the scheduler was lost; the agent restarted
    without the task (a framework that does not checkpoint) before retrying it. The
    master kept the task for ever, waiting for an ack of an update no agent would send
    again, and answered reconciliation with FINISHED for ever after. Like any task a
    reregistering agent does not report, the agent is asked about it, answers it lost,
    and it is forgotten."""
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t1", aid)]), 2.0)
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_FINISHED, b"f" * 16), 3.0)
    sent(m)  # the relay is lost
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value=aid), resources=resources("cpus:4;mem:4096"))
    feed(m, A1, pb.ReregisterAgent(agent=info), 10.0)
    lost = _agent_settles(m, fid, aid, 11.0)
    assert lost.state == pb.TASK_LOST
    assert not m.frameworks[fid].tasks and not m.agents[aid].tasks


def test_a_task_learned_from_a_reregistering_agent_is_forgotten_when_its_reported_terminal_head_is_acked():
    """(found next to the one above) A restarted master learned the task from the
    agent's report, whose unacknowledged head is FINISHED, but not that head's uuid: the
    framework's ack of it was forwarded to the agent (which then forgot the task) but did
    not end the task at the master, which kept it until the agent next reregistered."""
    m = new_master()
    fid = "fw-from-an-earlier-master"
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value="a-old"), resources=resources("cpus:4;mem:4096"))
    msg = pb.ReregisterAgent(agent=info)
    report = msg.tasks.add(task=command_task("t1", "a-old"), state=pb.TASK_FINISHED)
    report.framework_id.value = fid
    head = updates_in(status_update(fid, "a-old", "t1", pb.TASK_FINISHED, b"h" * 16))[0]
    report.unacknowledged.append(head)
    msg.frameworks.add(user="u", name="fw", id=pb.FrameworkID(value=fid), failover_timeout=60.0)
    feed(m, A1, msg, 1.0)
    feed(m, S1, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw", id=pb.FrameworkID(value=fid)),
                             transport=S1), 2.0)
    sent(m)
    ack = wire.Acknowledge(fid, [("a-old", "t1", b"h" * 16)])
    feed(m, S1, ack, 3.0)
    (forward,) = bodies(m, wire.StatusUpdateAck, to=A1)
    assert forward.rows[0][2] == b"h" * 16
    assert "t1" not in m.frameworks[fid].tasks and not m.agents["a-old"].tasks


def test_tasks_that_ended_unacknowledged_are_forgotten_with_their_removed_agent():
    """(found reading the removal path next to the reregistration one) A fresh agent
    replaced the one running t1 and t2: t1 had ended at the agent (latest FINISHED) but
    its framework was told only STARTING, t2's FINISHED was relayed but not acknowledged.
    Removal reported and forgot only tasks whose latest state was live, so both stayed at
    the master for ever (no agent would retry their updates) and t1's framework never
    learnt its end. t1 is reported gone; both are forgotten."""
    m = new_master()
    info = pb.AgentInfo(hostname="h", resources=resources("cpus:4;mem:4096"))
    feed(m, A1, pb.RegisterAgent(agent=info, session=b"first"), 0.0)
    (reply,) = bodies(m, pb.AgentRegistered, to=A1)
    aid = reply.agent_id.value
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t1", aid), command_task("t2", aid)]), 2.0)
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_STARTING, b"s" * 16, latest=pb.TASK_FINISHED), 3.0)
    feed(m, A1, status_update(fid, aid, "t2", pb.TASK_FINISHED, b"f" * 16), 3.0)
    sent(m)
    feed(m, A1, pb.RegisterAgent(agent=info, session=b"second"), 10.0)  # a new agent process
    (gone,) = [x.status for u in bodies(m, wire.Updates, to=S1) for x in updates_in(u)]
    assert gone.task_id.value == "t1" and gone.state == pb.TASK_LOST
    assert gone.reason == pb.TaskStatus.REASON_AGENT_RESTARTED
    assert not m.frameworks[fid].tasks


def test_an_agent_answers_tasks_it_does_not_know_with_a_reliable_drop_and_keeps_the_others():
    """(seed 241) A launch crossed the agent's reregistration report: the master used to
    drop the task from the stale report while the agent ran it. Now the agent settles the
    tasks its report lacked, in order with the launches on the same connection."""
    from engine_helpers import MASTER, advance

    for aware, expected in ((False, pb.TASK_LOST), (True, pb.TASK_DROPPED)):
        agent = _agent_engine()
        agent.connect(MASTER, 0.0)
        advance(agent, 1.0)
        sent(agent)
        feed(agent, MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value="a1"), master_info=pb.MasterInfo(
            id="m", hostname="m", port=5050, transport=MASTER)), 1.0)
        framework = pb.FrameworkInfo(user="u", name="fw", id=pb.FrameworkID(value="f1"))
        if aware:
            framework.capabilities.add(type=pb.FrameworkInfo.Capability.PARTITION_AWARE)
        task = command_task("known", "a1")
        feed(agent, MASTER, pb.RunTask(framework=framework, task=task), 2.0)
        sent(agent)
        feed(agent, MASTER, pb.ReconcileTasks(framework_id=framework.id, framework=framework,
                                              task_ids=[pb.TaskID(value="known"), pb.TaskID(value="gone")]), 3.0)
        (update,) = [updates_in(b)[0] for b in bodies(agent, wire.StatusUpdateMessage, to=MASTER)]
        assert update.status.task_id.value == "gone" and update.status.state == expected
        assert update.uuid and update.status.reason == pb.TaskStatus.REASON_RECONCILIATION
        # reliable: retried until the master acknowledges it, then forgotten
        advance(agent, 14.0)
        assert [updates_in(b)[0].uuid for b in bodies(agent, wire.StatusUpdateMessage, to=MASTER)] == [update.uuid]
        feed(agent, MASTER, wire.StatusUpdateAck("a1", [(framework.id.value, "gone", update.uuid)]), 15.0)
        assert ("f1", "gone") not in agent.tasks and ("f1", "known") in agent.tasks


def test_calls_queued_before_a_master_failover_do_not_fail_the_scheduler_that_resubscribes():
    """(seed 530 with reconcile answers droppable) A scheduler's acks and a kill, sent to
    the old master and held up on the link, reached the restarted master ahead of the
    scheduler's Subscribe; the new master, knowing the framework only from an agent's
    report, answered them 'served from another connection' (fatal) and the scheduler
    aborted right after it had subscribed again. Calls of a framework that no connection
    serves yet are ignored, as Mesos does."""
    m = new_master()
    fid = "fw-of-the-old-master"
    info = pb.AgentInfo(hostname="h", id=pb.AgentID(value="a-old"), resources=resources("cpus:4;mem:4096"))
    msg = pb.ReregisterAgent(agent=info)
    report = msg.tasks.add(task=command_task("t1", "a-old"), state=pb.TASK_RUNNING)
    report.framework_id.value = fid
    msg.frameworks.add(user="u", name="fw", id=pb.FrameworkID(value=fid), failover_timeout=60.0)
    feed(m, A1, msg, 1.0)
    sent(m)
    feed(m, S1, wire.Acknowledge(fid, [("a-old", "t1", b"q" * 16)]), 2.0)
    feed(m, S1, pb.Kill(framework_id=pb.FrameworkID(value=fid), task_id=pb.TaskID(value="t1")), 2.0)
    assert sent(m) == []  # no fatal error, no kill: nobody serves the framework yet
    assert m.counters["messages_from_unknown"] == 2
    feed(m, S1, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw", id=pb.FrameworkID(value=fid)),
                             transport=S1, force=True), 2.0)
    assert [type(b).__name__ for _, b in sent(m)] == ["Subscribed"]
    # once it is served, a call from elsewhere is a replaced scheduler's: fatal
    feed(m, S2, pb.Revive(framework_id=pb.FrameworkID(value=fid)), 3.0)
    (error,) = bodies(m, pb.Error, to=S2)
    assert error.fatal


def test_a_retried_first_subscribe_after_the_connection_dropped_reconnects_the_framework():
    """(seed 3773) A scheduler's first Subscribed was lost, then it was cut off long
    enough for the master to set the framework aside (disconnected, offers stopped).
    Its retried Subscribe, still without an id, got the same framework id back but left
    the framework disconnected: subscribed in its own eyes, it never got an offer."""
    m = new_master()
    register_agent(m, A1)
    feed(m, S1, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw"), transport=S1), 0.0)
    (first,) = bodies(m, pb.Subscribed, to=S1)  # lost on the way
    m.peer_event(S1, PeerEvent.DISCONNECTED, 5.0)
    fid = first.framework_id.value
    assert not m.frameworks[fid].connected
    feed(m, S1, pb.Subscribe(framework_info=pb.FrameworkInfo(user="u", name="fw"), transport=S1), 100.0)
    (again,) = bodies(m, pb.Subscribed, to=S1)
    assert again.framework_id.value == fid and m.frameworks[fid].connected
    m.tick(101.0)
    assert [o.framework_id.value for o in bodies(m, pb.Offers, to=S1)[0].offers] == [fid]


def test_a_retry_that_crossed_its_acknowledgement_is_acked_again_not_relayed():
    """(seed 6545) The agent retried an update before the framework's ack reached it; the
    retry, held up on the way, reached the master after the ack, and the master relayed
    it to the framework's new scheduler (it had failed over meanwhile), which got an
    update already acknowledged. The master remembers the last acknowledged update of
    each task and answers such a retry with the ack again."""
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t1", aid)]), 2.0)
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_STARTING, b"s" * 16), 3.0)
    assert [x.status.state for b in bodies(m, wire.Updates, to=S1) for x in updates_in(b)] == [pb.TASK_STARTING]
    feed(m, S1, wire.Acknowledge(fid, [(aid, "t1", b"s" * 16)]), 4.0)
    (ack,) = bodies(m, wire.StatusUpdateAck, to=A1)
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_STARTING, b"s" * 16), 5.0)  # the crossing retry
    out = sent(m)
    assert [(to, type(b).__name__, b.rows[0][2]) for to, b in out] == [(A1, "StatusUpdateAck", b"s" * 16)]
    assert m.counters["acknowledged_retries"] == 1
    feed(m, A1, status_update(fid, aid, "t1", pb.TASK_RUNNING, b"r" * 16), 6.0)  # the next one goes on
    assert [x.status.state for b in bodies(m, wire.Updates, to=S1) for x in updates_in(b)] == [pb.TASK_RUNNING]


def test_reconciling_a_task_still_staging_asks_its_agent_whose_launch_may_have_been_lost():
    """(seeds 1315, 5523) A launch was lost on a connection cut for less than the
    heartbeat timeout, so the agent never reregistered: the master answered STAGING to
    every reconciliation for ever. Now it also asks the agent (ReconcileTasks, after the
    launch on the same connection), which answers a task it lacks with TASK_DROPPED."""
    m = new_master()
    aid = register_agent(m, A1)
    fid = subscribe(m, S1)
    (offer,) = offers(m, 1.0, to=S1)
    feed(m, S1, accept(fid, [offer.id.value], [command_task("t1", aid), command_task("t2", aid)]), 2.0)
    sent(m)  # the RunTasks are lost
    feed(m, A1, status_update(fid, aid, "t2", pb.TASK_RUNNING, b"r" * 16), 3.0)  # t2 did arrive
    sent(m)
    msg = pb.Reconcile(framework_id=pb.FrameworkID(value=fid))
    for tid in ("t1", "t2"):
        msg.tasks.add(task_id=pb.TaskID(value=tid), agent_id=pb.AgentID(value=aid))
    feed(m, S1, msg, 60.0)
    out = sent(m)
    (ask,) = [b for to, b in out if to == A1 and isinstance(b, pb.ReconcileTasks)]
    assert [t.value for t in ask.task_ids] == ["t1"] and ask.framework.id.value == fid
    feed(m, S1, pb.Reconcile(framework_id=pb.FrameworkID(value=fid)), 61.0)  # implicit: the same
    (ask,) = bodies(m, pb.ReconcileTasks, to=A1)
    assert [t.value for t in ask.task_ids] == ["t1"]


def test_an_agent_the_master_set_aside_is_told_by_its_pings_and_registers_again():
    """(seed 18937) The master saw the agent's connection drop (a partition) and set the
    agent aside, while the agent, whose pings kept coming, still thought itself
    registered: launches sent meanwhile were lost and, the agent never reregistering,
    their tasks stayed STAGING for ever. Pings say whether the master holds the agent
    connected, and an agent told it is not registers again (as Mesos agents do)."""
    m = new_master()
    aid = register_agent(m, A1)
    m.peer_event(A1, PeerEvent.DISCONNECTED, 1.0)
    m.tick(m.config.ping_interval)
    (ping,) = bodies(m, pb.Ping, to=A1)
    assert not ping.connected

    agent = AgentEngine(pb.AgentInfo(hostname="h", resources=resources("cpus:4;mem:4096")), A1,
                        AgentConfig(registration_backoff=0.001))
    agent.connect(MASTER, 0.0)
    agent.tick(0.01)
    feed(agent, MASTER, pb.AgentRegistered(agent_id=pb.AgentID(value=aid), master_info=pb.MasterInfo(
        id="m1", hostname="m", port=5050, transport=MASTER)), 0.1)
    agent.take_actions()
    feed(agent, MASTER, pb.Ping(connected=True), 1.0)
    assert bodies(agent, pb.Pong, to=MASTER)
    feed(agent, MASTER, ping, 2.0)
    actions = agent.take_actions()
    assert any(isinstance(a, MasterLost) for a in actions) and not [a for a in actions if isinstance(a, Send)]
    assert agent.counters["forced_reregistrations"] == 1
    agent.connect(MASTER, 2.0)  # what the daemon does on MasterLost
    agent.tick(3.0)
    (again,) = bodies(agent, pb.ReregisterAgent, to=MASTER)
    assert again.agent.id.value == aid
