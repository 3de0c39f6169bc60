"""Several masters in the simulator, electing their leader through a simulated
ZooKeeper: the leader crashes, or is cut off; a standby leads from the registry; no
acknowledged update is lost, each arrives once and in order, and at most one master
acts at any time."""
from __future__ import annotations

from corral import Scheduler, command_task, is_terminal
from corral.engines.master import MasterEngine
from corral.protos import corral_pb2 as pb
from corral.runtime.actions import unhandled
from corral.testing import ZOOKEEPER_ADDRESS, Partition, SimCluster, master_address

SESSION_TIMEOUT = 10.0
LONG = [f"long-{i}" for i in range(4)]
SHORT = [f"short-{i}" for i in range(8)]


class Steady(Scheduler):
    """Long tasks that run through the failover, short ones that end around it, launched
    a few per offer; records every update that carries a uuid (not the master's
    reconciliation answers)."""

    def __init__(self) -> None:
        self.pending = [(t, "sleep 1000") for t in LONG] + [(t, f"sleep {10 + 5 * i}; exit 0")
                                                            for i, t in enumerate(SHORT)]
        self.seen: dict[str, list[pb.TaskStatus]] = {t: [] for t, _ in self.pending}
        self.registrations = 0

    def registered(self, driver, framework_id, master_info):
        self.registrations += 1

    def reregistered(self, driver, master_info):
        self.registrations += 1

    def resource_offers(self, driver, offers):
        for offer in offers:
            batch, self.pending = self.pending[:3], self.pending[3:]
            if batch:
                driver.launch_tasks(offer.id, [command_task(t, c, offer.agent_id, "cpus:0.25;mem:32", task_id=t)
                                               for t, c in batch])
            else:
                driver.decline_offer(offer.id, pb.Filters(refuse_seconds=30.0))

    def status_update(self, driver, status):
        if status.uuid:
            self.seen[status.task_id.value].append(status)

    def states(self, task: str) -> list[int]:
        return [s.state for s in self.seen[task]]


def cluster_with(seed: int = 0, **kwargs) -> tuple[SimCluster, Steady]:
    cluster = SimCluster(agents=2, seed=seed, masters=3, zk_session_timeout=SESSION_TIMEOUT, record=True, **kwargs)
    steady = Steady()
    cluster.add_scheduler(steady, pb.FrameworkInfo(user="sim", name="steady", checkpoint=True,
                                                   failover_timeout=3600.0))
    assert cluster.run_until(lambda: all(pb.TASK_RUNNING in steady.states(t) for t in LONG), 60.0)
    return cluster, steady


def assert_nothing_lost(cluster: SimCluster, steady: Steady) -> None:
    election = cluster.election
    assert election is not None
    assert election.overlaps == [] and election.fenced_writes == 0
    for task in LONG:  # never relaunched, still running
        assert steady.states(task) == [pb.TASK_STARTING, pb.TASK_RUNNING], task
    for task in SHORT:  # every update once, in order, to the true end
        assert steady.states(task) == [pb.TASK_STARTING, pb.TASK_RUNNING, pb.TASK_FINISHED], task
    uuids = [s.uuid for seen in steady.seen.values() for s in seen]
    assert len(uuids) == len(set(uuids))
    # and the new leader knows it all: the long tasks running, every short one forgotten
    # (once its end is acknowledged)
    (framework,) = cluster.master.frameworks.values()
    assert framework.connected
    assert cluster.run_until(lambda: set(framework.tasks) == set(LONG), 60.0)
    assert {t: task.state for t, task in framework.tasks.items()} == dict.fromkeys(LONG, pb.TASK_RUNNING)


def test_a_standby_leads_when_the_leader_crashes():
    cluster, steady = cluster_with()
    election = cluster.election
    first = cluster.master
    assert [t.address for t in election.terms] == [master_address(1)]
    # the elected master's process carries out every action its engine can emit
    assert unhandled(MasterEngine.ACTIONS, cluster.performs(master_address(1))) == []
    cluster.crash_master()  # no restart
    assert cluster.run_until(lambda: len(election.terms) == 2, 60.0)
    second = election.terms[1]
    # the dead leader's session had to expire first
    assert second.address == master_address(2) and second.elected_at >= SESSION_TIMEOUT
    assert cluster.master is not first and cluster.master.id == second.master_id
    assert cluster.run_until(lambda: all(s and is_terminal(s[-1].state) for t, s in steady.seen.items()
                                         if t in SHORT), 200.0)
    assert cluster.run_until(lambda: not cluster.master.recovering and len(cluster.master.agents) == 2, 60.0)
    assert_nothing_lost(cluster, steady)
    assert steady.registrations == 2  # subscribed, then resubscribed with the new leader


def test_a_leader_cut_off_stops_acting_before_another_leads_and_comes_back_a_standby():
    cut = Partition(frozenset({master_address(1)}), start=20.0, end=80.0)
    cluster, steady = cluster_with(faults=None)
    cluster.network.plan.partitions.append(cut)
    cluster._watch_partition(cut)
    election = cluster.election
    assert cluster.run_until(lambda: len(election.terms) == 2, 60.0)
    old, new = election.terms
    assert old.address == master_address(1) and new.address == master_address(2)
    assert old.ended_at is not None and old.ended_at < new.elected_at  # it stopped acting first
    cluster.run_until(lambda: cluster.clock.now >= 100.0, 200.0)  # healed: master-1 is a standby again
    assert not election.acting(master_address(1)) and election.acting(master_address(2))
    assert election.candidates[master_address(1)].leadership.candidacy is not None
    assert cluster.run_until(lambda: all(s and is_terminal(s[-1].state) for t, s in steady.seen.items()
                                         if t in SHORT), 200.0)
    assert cluster.run_until(lambda: not cluster.master.recovering and len(cluster.master.agents) == 2, 60.0)
    assert_nothing_lost(cluster, steady)


def test_nobody_leads_while_zookeeper_cannot_be_reached_and_one_does_after():
    cluster, steady = cluster_with()
    cut = Partition(frozenset({ZOOKEEPER_ADDRESS}), start=20.0, end=40.0)  # the masters still reach the agents
    cluster.network.plan.partitions.append(cut)
    election = cluster.election
    cluster.run_until(lambda: cluster.clock.now >= 35.0, 60.0)
    assert not any(election.acting(a) for a in election.candidates)  # the lease ran out: nobody acts
    (first,) = election.terms
    assert first.ended_at is not None and first.ended_at <= 20.0 + 0.75 * SESSION_TIMEOUT
    assert cluster.run_until(lambda: len(election.terms) == 2, 60.0)
    assert election.terms[1].elected_at >= 40.0
    assert cluster.run_until(lambda: all(s and is_terminal(s[-1].state) for t, s in steady.seen.items()
                                         if t in SHORT), 200.0)
    assert cluster.run_until(lambda: not cluster.master.recovering and len(cluster.master.agents) == 2, 60.0)
    assert_nothing_lost(cluster, steady)
