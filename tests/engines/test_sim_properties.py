"""Properties of the whole system under random faults, over many seeds.

Each seed builds the cluster `benches/bench_sim.py` measures (3 agents, 50 command
tasks: two frameworks of 25, one that checkpoints and one that does not) and draws a
fault plan from the seed (`FaultPlan.random`): dropped, duplicated and delayed messages,
partitions that heal, and crashes of the master, agents, executors and schedulers with
restarts, all over after FAULT_WINDOW simulated seconds. The run goes on until the
cluster has settled (every process up and connected, every task terminal at its
scheduler, every update acknowledged back to its agent, every task forgotten). Then:

1. Exactly once: no update (uuid) reaches a scheduler process's `status_update` twice,
   and no update is delivered again once its acknowledgement reached the agent (so an
   acknowledged update is never redelivered, not even to a failed-over scheduler; one
   whose ack was lost may be redelivered to the next scheduler process only).
2. Per-task order: the states a task reports never go backwards, by rank STAGING <
   STARTING < RUNNING < KILLING < terminal (a state may repeat: reconciliation answers
   and health updates restate it, and an update the master makes up has no uuid to be
   de-duplicated by). A terminal state is final,
   with two exceptions from MESOS-SEMANTICS.md: after TASK_LOST (and, for frameworks
   that are partition-aware, UNREACHABLE / UNKNOWN) anything may follow, since a lost
   task may come back; and after any terminal state, answers about a task the master or
   agent no longer knows (state LOST, reason RECONCILIATION: a kill or reconcile that
   crossed the task's end) may follow, and do not change the task's state.
3. Convergence: every task is terminal in the scheduler's view (`task_states()` is
   empty, and the last state of each task, answers about forgotten tasks aside, is
   terminal), and it is the agents' last word: the state of the last update of the
   task's stream whose acknowledgement reached its agent, when that update is
   terminal; when it is not (the agent lost the stream in a restart without
   checkpoints), the scheduler's last state says the task is lost, or it is the state
   of a terminal update of that stream which reached the master before the stream was
   lost (the master relays it, and answers reconciliation with the head of the
   stream: MESOS-SEMANTICS.md, so a framework may learn a task's end from an update
   whose acknowledgement never reached the agent).
4. No task whose executor has exited stays non-terminal in the scheduler's view.

Seeds: CORRAL_SIM_SEEDS=N (default 200) runs seeds 0..N-1, CORRAL_SIM_SEEDS=A-B seeds
A..B-1 (e.g. a sweep split over cores); CORRAL_SIM_SEED=N runs seed N only. Odd seeds
run with batching on (every engine collects the status path's rows per peer and turn,
`SimCluster(batch=True)`), even seeds without.
A failure names its seed and the command that reproduces it.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest

from corral import Scheduler, command_task, is_terminal
from corral.runtime.driver import DriverStatus
from corral.engines.scheduler import Subscription
from corral.net.protocol import MessageType
from corral.protos import corral_pb2 as pb
from corral.testing import FaultPlan, SimCluster, is_master_address

from engine_helpers import updates_in

FAULT_WINDOW = 300.0
SETTLE_LIMIT = 20000.0
AGENTS = 3
TASKS_PER_FRAMEWORK = 25
#: (command, killed by the framework: "running" once it reports, "launch" at once)
KINDS = [("exit 0", None), ("exit 1", None), ("sleep 3; exit 0", None), ("sleep 20; false", None),
         ("sleep 60; true", None), ("no-such-command", None), ("sleep infinity", "running"),
         ("sleep 30; exit 0", "launch")]
RANK = {pb.TASK_STAGING: 0, pb.TASK_STARTING: 1, pb.TASK_RUNNING: 2, pb.TASK_KILLING: 3}
#: after these the task may come back (MESOS-SEMANTICS.md: "a LOST task may come back")
RESETS = frozenset({pb.TASK_LOST, pb.TASK_UNREACHABLE, pb.TASK_UNKNOWN})
LOST_LIKE = frozenset({pb.TASK_LOST, pb.TASK_DROPPED, pb.TASK_GONE, pb.TASK_GONE_BY_OPERATOR})


#: seeds that still break a property, from bugs not fixed yet (see the failure messages):
#: seeds that still break a property (each with what breaks); none at the moment: seed 241
#: (a launch crossing a stale reregistration report) is fixed by ReconcileTasks
KNOWN_FAILURES: frozenset[int] = frozenset()


def seeds() -> list:
    if "CORRAL_SIM_SEED" in os.environ:
        chosen = [int(os.environ["CORRAL_SIM_SEED"])]
    else:
        spec = os.environ.get("CORRAL_SIM_SEEDS", "200")
        first, _, last = spec.partition("-")
        chosen = range(int(first), int(last)) if last else range(int(first))
    return [pytest.param(seed, marks=pytest.mark.xfail(reason="known engine bug, not fixed yet", strict=False))
            if seed in KNOWN_FAILURES else seed for seed in chosen]


@dataclass(frozen=True)
class Seen:
    """One status as the framework's `status_update` got it."""

    at: float
    incarnation: int
    status: pb.TaskStatus


class Chaos(Scheduler):
    """Launches its tasks (a few per offer), kills the ones meant to be killed until
    they end, and records every status it is given. The object outlives scheduler
    crashes: it is the framework's own store (its tasks and what it saw)."""

    def __init__(self, cluster: SimCluster, prefix: str) -> None:
        self.cluster = cluster
        self.kinds = {f"{prefix}-{i}": KINDS[i % len(KINDS)] for i in range(TASKS_PER_FRAMEWORK)}
        self.pending = list(self.kinds)
        self.seen: dict[str, list[Seen]] = {tid: [] for tid in self.kinds}
        #: task id -> the agent it was launched on
        self.launched: dict[str, str] = {}

    def registered(self, driver, framework_id, master_info):
        # a restarted program hands its store to the new driver, to be reconciled: every
        # task it launched that has not ended, also those it has heard nothing about yet
        # (their launch may have been lost, and what the master said about it too)
        known = []
        for tid, agent_id in self.launched.items():
            seen = self.seen[tid]
            if not seen:
                known.append(pb.TaskStatus(task_id=pb.TaskID(value=tid), state=pb.TASK_STAGING,
                                           agent_id=pb.AgentID(value=agent_id)))
            elif not is_terminal(seen[-1].status.state):
                known.append(seen[-1].status)
        if known:
            driver.track_tasks(known)

    def resource_offers(self, driver, offers):
        for offer in offers:
            cpus = sum(r.scalar.value for r in offer.resources if r.name == "cpus")
            mem = sum(r.scalar.value for r in offer.resources if r.name == "mem")
            fit = min(3, int(cpus / 0.5 + 1e-9), int(mem / 64 + 1e-9))
            batch, self.pending = self.pending[:fit], self.pending[fit:]
            if not batch:
                driver.decline_offer(offer.id, pb.Filters(refuse_seconds=60.0))
                continue
            driver.launch_tasks(offer.id, [command_task(tid, self.kinds[tid][0], offer.agent_id, "cpus:0.5;mem:64",
                                                        task_id=tid) for tid in batch])
            for tid in batch:
                self.launched[tid] = offer.agent_id.value
                if self.kinds[tid][1] == "launch":
                    driver.kill_task(pb.TaskID(value=tid))

    def status_update(self, driver, status):
        tid = status.task_id.value
        self.seen[tid].append(Seen(self.cluster.clock.now, driver.incarnation, status))
        if self.kinds[tid][1] and not is_terminal(status.state):
            driver.kill_task(status.task_id)


def settled(cluster: SimCluster, runners: list[Chaos]) -> bool:
    election = cluster.election
    return (not cluster.down
            and (election is None or any(c.engine is cluster.master and c.leadership.acts(cluster.clock.now)
                                         for c in election.candidates.values()))
            and all(d.status is DriverStatus.RUNNING and d.engine.subscription is Subscription.SUBSCRIBED
                    for d in cluster.schedulers)
            and all(not fw.tasks for fw in cluster.master.frameworks.values())
            and all(len(a.updates) == 0 and not a.tasks for a in cluster.agents)
            and not cluster.live_executors()
            and all(s and is_terminal(final_state(s)) for r in runners for s in r.seen.values()))


def forgotten_task_answer(state: int, status: pb.TaskStatus) -> bool:
    """An answer about a task the master or agent no longer knows, after a terminal state."""
    return is_terminal(state) and status.state == pb.TASK_LOST and status.reason == pb.TaskStatus.REASON_RECONCILIATION


def final_state(seen: list[Seen]) -> int:
    state = pb.TASK_STAGING
    for s in seen:
        if not forgotten_task_answer(state, s.status):
            state = s.status.state
    return state


def name(state: int) -> str:
    return pb.TaskState.Name(state)


def history(seen: list[Seen]) -> str:
    return ", ".join(f"{s.at:.1f}s#{s.incarnation} {name(s.status.state)}"
                     f"{'' if s.status.uuid else ' (master)'} {pb.TaskStatus.Reason.Name(s.status.reason)}"
                     for s in seen)


def check_seed(seed: int, masters: int = 1) -> list[str]:
    """Run one seed; the properties it broke (empty when all hold). With several
    `masters`, also: 5. at most one master acts at any time, and no registry write of
    a master that lost the leader epoch is taken."""
    plan = FaultPlan.random(random.Random(seed), agents=AGENTS, schedulers=2, duration=FAULT_WINDOW, masters=masters)
    cluster = SimCluster(agents=AGENTS, seed=seed, faults=plan, record=True, batch=seed % 2 == 1, masters=masters)
    runners = [Chaos(cluster, "ckpt"), Chaos(cluster, "plain")]
    drivers = [cluster.add_scheduler(runner, pb.FrameworkInfo(user="sim", name=runner_name, checkpoint=checkpoint,
                                                              failover_timeout=7 * 86400.0))
               for runner, runner_name, checkpoint in zip(runners, ("ckpt", "plain"), (True, False))]
    cluster.run_for(FAULT_WINDOW)
    if not cluster.run_until(lambda: settled(cluster, runners), max_time=SETTLE_LIMIT):
        unsettled = {tid: history(s) for r in runners for tid, s in r.seen.items()
                     if not s or not is_terminal(final_state(s))}
        return [f"did not settle within {SETTLE_LIMIT:g}s after the faults: down={sorted(cluster.down)}, "
                f"master tasks={sum(len(f.tasks) for f in cluster.master.frameworks.values())}, "
                f"agent tasks={[len(a.tasks) for a in cluster.agents]}, "
                f"agent updates={[len(a.updates) for a in cluster.agents]}, "
                f"live executors={len(cluster.live_executors())}, "
                f"subscriptions={[d.engine.subscription.value for d in cluster.schedulers]}, "
                f"tasks not terminal at the scheduler: {unsettled}"]

    # when each uuid's acknowledgement first reached an agent
    acked_at: dict[bytes, float] = {}
    for d in cluster.network.deliveries:
        if d.type is MessageType.STATUS_UPDATE_ACK and d.to.startswith("sim://agent-") and "/" not in d.to[6:]:
            for row in d.body.rows:
                acked_at.setdefault(row[2], d.at)
    # the terminal states of each task's stream that reached the master (relayed, or
    # carried as unacknowledged updates by a reregistering agent)
    ended_at_master: dict[str, set[int]] = {}
    for d in cluster.network.deliveries:
        if not is_master_address(d.to):
            continue
        if d.type is MessageType.STATUS_UPDATE:
            stream_updates = updates_in(d.body)
        elif d.type is MessageType.REREGISTER_AGENT:
            stream_updates = [u for report in d.body.tasks for u in report.unacknowledged]
        else:
            continue
        for u in stream_updates:
            if u.uuid and is_terminal(u.status.state):
                ended_at_master.setdefault(u.status.task_id.value, set()).add(u.status.state)

    problems = []
    if cluster.election is not None:
        if cluster.election.overlaps:
            problems.append(f"one leader: several masters could act at once: {cluster.election.overlaps[:5]}")
        if cluster.election.fenced_writes:
            problems.append(f"one leader: {cluster.election.fenced_writes} registry writes of a deposed master")
    for runner, driver in zip(runners, drivers):
        if driver.engine.task_states():
            problems.append(f"convergence: scheduler still tracks non-terminal tasks {driver.engine.task_states()}")
        for tid, seen in runner.seen.items():
            # 1. exactly once
            delivered: set[tuple[int, bytes]] = set()
            for s in seen:
                uuid = s.status.uuid
                if not uuid:
                    continue
                if (s.incarnation, uuid) in delivered:
                    problems.append(f"exactly once: {tid} update {uuid.hex()} delivered twice to scheduler "
                                    f"process #{s.incarnation}: {history(seen)}")
                if uuid in acked_at and s.at > acked_at[uuid]:
                    problems.append(f"exactly once: {tid} update {uuid.hex()} ({name(s.status.state)}) delivered at "
                                    f"{s.at:.3f}s after its ack reached the agent at {acked_at[uuid]:.3f}s")
                delivered.add((s.incarnation, uuid))
            # 2. order
            state: int | None = None
            for s in seen:
                new = s.status.state
                if state is not None and forgotten_task_answer(state, s.status):
                    continue
                if state is not None and state not in RESETS and new != state:
                    if is_terminal(state) or RANK.get(new, 4) < RANK[state]:
                        problems.append(f"order: {tid} went {name(state)} -> {name(new)}: {history(seen)}")
                        break
                state = new
            # 3. convergence with the agents' last word, 4. exited executors
            final = final_state(seen)
            stream = [s for s in seen if s.status.uuid in acked_at
                      and s.status.reason != pb.TaskStatus.REASON_RECONCILIATION]
            last = max(stream, key=lambda s: acked_at[s.status.uuid]) if stream else None
            if not is_terminal(final):
                problems.append(f"exited executor: {tid} ends {name(final)} at the scheduler: {history(seen)}")
            elif last is not None and is_terminal(last.status.state) and final != last.status.state:
                problems.append(f"convergence: {tid} ends {name(final)} at the scheduler but its agent's last "
                                f"acknowledged update says {name(last.status.state)}: {history(seen)}")
            elif (last is not None and not is_terminal(last.status.state) and final not in LOST_LIKE
                  and final not in ended_at_master.get(tid, ())):
                problems.append(f"convergence: {tid}'s stream ended at {name(last.status.state)} without a terminal "
                                f"update, yet the scheduler ends with {name(final)}: {history(seen)}")
    return problems


def reproduce(seed: int, masters: int = 1) -> str:
    test = "" if masters == 1 else "::test_properties_hold_with_several_masters"
    return f"CORRAL_SIM_SEED={seed} python -m pytest tests/engines/test_sim_properties.py{test}"


@pytest.mark.parametrize("seed", seeds())
def test_properties_hold_under_random_faults(seed):
    problems = check_seed(seed)
    assert not problems, (f"seed {seed} broke {len(problems)} propert{'y' if len(problems) == 1 else 'ies'} "
                          f"(reproduce: {reproduce(seed)}; plan: FaultPlan.random(random.Random({seed}), ...)):\n"
                          + "\n".join(problems[:20]))


#: seeds of the several-masters sweep (each runs three masters electing through the
#: simulated ZooKeeper, the leader crashing or cut off as the plan says): a slice of the
#: one-master sweep's seeds, as CI time allows (CORRAL_SIM_SEEDS/CORRAL_SIM_SEED select
#: others as for the one-master sweep)
SEVERAL_MASTERS_SHARE = 4


@pytest.mark.parametrize("seed", seeds()[::SEVERAL_MASTERS_SHARE] if "CORRAL_SIM_SEED" not in os.environ else seeds())
def test_properties_hold_with_several_masters(seed):
    problems = check_seed(seed, masters=3)
    assert not problems, (f"seed {seed}, 3 masters, broke {len(problems)} propert{'y' if len(problems) == 1 else 'ies'} "
                          f"(reproduce: {reproduce(seed, 3)}):\n" + "\n".join(problems[:20]))
