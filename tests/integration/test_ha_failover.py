"""Real processes with a real ZooKeeper: three masters elect a leader, two agents and a
checkpointing framework follow it through the zk:// URL. The leader is SIGKILLed (a
standby leads, the agents reregister, the framework resubscribes and its tasks keep
running in the same processes, every update arrives once per uuid and in order), frozen
past its session (it acts no more and one master leads), and ZooKeeper itself is
restarted under the masters (they carry on and one leads)."""
from __future__ import annotations

import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

import corral
from corral.agent.checkpoint import process_stamp
from corral.testing.cluster import Daemon, LocalCluster, get_json, wait_for

from support import RecordingScheduler

#: short enough for quick failovers, long enough for a loaded 2-core machine
SESSION_TIMEOUT = 4.0
LONG = [f"long-{i}" for i in range(4)]
ORDER = {"TASK_STAGING": 0, "TASK_STARTING": 1, "TASK_RUNNING": 2}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster", agents=2, masters=3, zk_session_timeout=SESSION_TIMEOUT,
                      master_flags=["--allocation-interval", "0.2"]) as c:
        yield c


class Streaming(RecordingScheduler):
    """Keeps short tasks coming (one more each time one finishes) next to long ones, so
    updates flow while the masters fail over."""

    def __init__(self, long: list[str], short: int) -> None:
        super().__init__([(t, "sleep 600") for t in long] + [(f"short-{i}", "sleep 1") for i in range(2)])
        self._short_total = short
        self._next_short = 2

    def status_update(self, driver, status):
        super().status_update(driver, status)
        if status.state == corral.TASK_FINISHED and status.uuid and self._next_short < self._short_total:
            with self.cond:
                self.pending.append((f"short-{self._next_short}", "sleep 1"))
                self._next_short += 1


def start(cluster: LocalCluster, scheduler: RecordingScheduler) -> corral.SchedulerDriver:
    info = corral.FrameworkInfo(name="ha", user="", checkpoint=True, failover_timeout=300.0)
    driver = corral.SchedulerDriver(scheduler, info, cluster.master_url)
    driver.start()
    return driver


def task_pid(scheduler: RecordingScheduler, task_id: str) -> int:
    (running,) = [u for u in scheduler.updates if u.task_id.value == task_id and u.state == corral.TASK_RUNNING
                  and u.uuid]
    return int(running.message.split()[1])


def leader_state(cluster: LocalCluster, leader: Daemon) -> dict:
    return get_json(leader.address, "/state")


def assert_updates_once_and_in_order(scheduler: RecordingScheduler) -> None:
    """Each uuid delivered once; each task's updates (those with a uuid: not the
    master's reconciliation answers) in the order its executor sent them."""
    with scheduler.cond:
        updates = [u for u in scheduler.updates if u.uuid]
    uuids = [u.uuid for u in updates]
    assert len(uuids) == len(set(uuids))
    by_task: dict[str, list[str]] = {}
    for u in updates:
        by_task.setdefault(u.task_id.value, []).append(corral.state_name(u.state))
    for task, states in by_task.items():
        ranks = [ORDER.get(s, 3) for s in states]
        assert ranks == sorted(ranks) and ranks.count(3) <= 1, (task, states)


def agents_back(cluster: LocalCluster, leader: Daemon, count: int) -> bool:
    agents = leader_state(cluster, leader)["agents"]
    return sum(1 for a in agents if a["state"] == "registered") == count


def framework_back(cluster: LocalCluster, leader: Daemon, framework_id: str) -> bool:
    return [f["id"] for f in leader_state(cluster, leader)["frameworks"] if f["connected"]] == [framework_id]


def test_sigkill_of_the_leader_fails_over_and_loses_nothing(cluster: LocalCluster) -> None:
    scheduler = Streaming(LONG, short=12)
    driver = start(cluster, scheduler)
    try:
        assert scheduler.wait(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in LONG), 60), scheduler
        framework_id = scheduler.framework_id
        pids = {t: task_pid(scheduler, t) for t in LONG}
        old = cluster.wait_leader()
        agent_ids = sorted(a["id"] for a in leader_state(cluster, old)["agents"])

        old.kill()
        new = cluster.wait_leader(timeout=60, other_than=old)
        wait_for(lambda: agents_back(cluster, new, 2), 60, "both agents to reregister with the new leader")
        assert sorted(a["id"] for a in leader_state(cluster, new)["agents"]) == agent_ids
        metrics = {m.name: get_json(m.address, "/metrics/snapshot") for m in cluster.masters if m is not old}
        assert {name: (v["master/elected"], v["master/zk_state"]) for name, v in metrics.items()} == {
            m.name: (1 if m is new else 0, 1) for m in cluster.masters if m is not old}
        wait_for(lambda: framework_back(cluster, new, framework_id), 60, "the framework to resubscribe")
        # the short tasks keep coming and finishing through the new leader
        shorts = [f"short-{i}" for i in range(12)]
        assert scheduler.wait_terminal(shorts, 90), scheduler
        for t in shorts:
            assert scheduler.states(t)[-1] == "TASK_FINISHED", (t, scheduler.states(t))
        # the long tasks never stopped: the same processes, one STARTING and one RUNNING each
        for t in LONG:
            assert process_stamp(pids[t]) is not None
            assert [corral.state_name(u.state) for u in scheduler.updates
                    if u.task_id.value == t and u.uuid] == ["TASK_STARTING", "TASK_RUNNING"]
        # and the driver's reconciliation after resubscribing vouched for them
        assert scheduler.wait(lambda: all(any(u.reason == corral.TaskStatus.REASON_RECONCILIATION
                                                and u.state == corral.TASK_RUNNING and not u.uuid
                                                for u in scheduler.updates if u.task_id.value == t)
                                            for t in LONG), 30)
        assert_updates_once_and_in_order(scheduler)
        tasks = {t["id"]: t["state"] for f in leader_state(cluster, new)["frameworks"] for t in f["tasks"]}
        assert {t: tasks.get(t) for t in LONG} == dict.fromkeys(LONG, "TASK_RUNNING")
    finally:
        driver.stop()


def offers_sent(daemon: Daemon) -> int:
    return get_json(daemon.address, "/metrics/snapshot").get("master/offers_sent", 0)


def test_a_leader_frozen_past_its_session_acts_no_more(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([(t, "sleep 600") for t in LONG[:2]])
    driver = start(cluster, scheduler)
    try:
        assert scheduler.wait(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in LONG[:2]), 60), scheduler
        frozen = cluster.wait_leader()
        frozen.signal(signal.SIGSTOP)
        try:
            new = cluster.wait_leader(timeout=60, other_than=frozen)
            wait_for(lambda: agents_back(cluster, new, 2), 60, "both agents to reregister with the new leader")
        finally:
            frozen.signal(signal.SIGCONT)
        # the moment it runs again it knows its lease ran out: a standby, no term, no offers
        health = wait_for(lambda: get_json(frozen.address, "/health"), 10, "the thawed master to answer")
        assert health["role"] == "standby"
        assert get_json(frozen.address, "/metrics/snapshot")["master/elected"] == 0
        # its term is dropped (no engine, no transport) and it contends again
        wait_for(lambda: "master/offers_sent" not in get_json(frozen.address, "/metrics/snapshot"), 10,
                 "the thawed master to drop its term")
        leaders = [m for m in cluster.masters if get_json(m.address, "/info")["leader"]]
        assert leaders == [new]
        # a standby redirects what is the leader's (once it has read who leads), and names the leader
        wait_for(lambda: get_json(frozen.address, "/info")["leader_address"] == new.address, 10,
                 "the standby to know the leader")
        with pytest.raises(urllib.error.HTTPError) as redirect:
            urllib.request.build_opener(NoRedirect).open(f"http://{frozen.address}/state?x=1", timeout=5)
        assert redirect.value.code == 307
        assert redirect.value.headers["Location"] == f"http://{new.address}/state?x=1"
        # the framework carries on with the new leader
        wait_for(lambda: framework_back(cluster, new, scheduler.framework_id), 60, "the framework to resubscribe")
        assert_updates_once_and_in_order(scheduler)
    finally:
        driver.stop()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def test_masters_survive_a_zookeeper_restart(cluster: LocalCluster) -> None:
    scheduler = RecordingScheduler([(t, "sleep 600") for t in LONG[:2]])
    driver = start(cluster, scheduler)
    try:
        assert scheduler.wait(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in LONG[:2]), 60), scheduler
        assert cluster.zookeeper is not None
        pids = {t: task_pid(scheduler, t) for t in LONG[:2]}
        # ZooKeeper down longer than the lease: the leader stops acting, nobody leads
        cluster.zookeeper.stop()
        wait_for(lambda: all(get_json(m.address, "/health")["role"] == "standby" for m in cluster.masters), 30,
                 "every master to stop leading without ZooKeeper")
        assert all(get_json(m.address, "/metrics/snapshot")["master/elected"] == 0 for m in cluster.masters)
        # no leader known: state and operator calls answer 503, /redirect too
        wait_for(lambda: all(get_json(m.address, "/health")["zookeeper"] != "connected" for m in cluster.masters),
                 30, "every master to see ZooKeeper gone")
        for m in cluster.masters:
            for path in ("/state", "/redirect"):
                with pytest.raises(urllib.error.HTTPError) as unavailable:
                    urllib.request.build_opener(NoRedirect).open(f"http://{m.address}{path}", timeout=5)
                assert unavailable.value.code == 503
        cluster.zookeeper.start()
        leader = cluster.wait_leader(timeout=60)
        wait_for(lambda: agents_back(cluster, leader, 2), 60, "both agents registered with the leader")
        wait_for(lambda: framework_back(cluster, leader, scheduler.framework_id), 60, "the framework subscribed")
        wait_for(lambda: all(get_json(m.address, "/health")["zookeeper"] == "connected" for m in cluster.masters),
                 30, "every master connected to ZooKeeper again")
        assert all(m.alive() for m in cluster.masters)
        assert [m for m in cluster.masters if get_json(m.address, "/info")["leader"]] == [leader]
        tasks = {t["id"]: t["state"] for f in leader_state(cluster, leader)["frameworks"] for t in f["tasks"]}
        assert {t: tasks.get(t) for t in LONG[:2]} == dict.fromkeys(LONG[:2], "TASK_RUNNING")
        assert all(process_stamp(p) is not None for p in pids.values())
        assert_updates_once_and_in_order(scheduler)
    finally:
        driver.stop()
