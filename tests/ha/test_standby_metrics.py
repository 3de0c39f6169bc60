"""A standby master answers /metrics (Prometheus scrapes every master, as with Mesos):
master_elected 0, its ZooKeeper session and uptime, none of the leader's figures; once it
leads, the leader's figures too. Two master daemons in this process on a real ZooKeeper."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from corral.master.daemon import MasterDaemon, MasterFlags
from corral.testing.cluster import get_json, wait_for

#: families only a leader has (it knows agents, frameworks, tasks and offers)
LEADER_ONLY = {"corral_master_agents", "corral_master_frameworks", "corral_master_tasks",
               "corral_master_outstanding_offers", "corral_master_resources"}


def scrape(address: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics parsed by prometheus_client: family -> labels -> value (200 or it raises)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            families.setdefault(family.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return families


def test_a_standby_serves_its_own_metrics_and_the_leaders_once_elected(zookeeper, tmp_path):
    masters = [MasterDaemon(MasterFlags(work_dir=tmp_path / f"m{i}", port=0, zk=zookeeper.url(),
                                        zk_session_timeout=4.0)) for i in range(2)]
    for m in masters:
        m.start()
    try:
        leader = wait_for(lambda: next((m for m in masters if m.leading()), None), 30, "a leader")
        standby = next(m for m in masters if m is not leader)
        wait_for(lambda: get_json(standby.address, "/info")["leader_address"] == leader.address, 15,
                 "the standby to know the leader")
        mine = scrape(standby.address)
        assert mine["corral_master_elected"] == {(): 0.0}
        assert mine["corral_master_zk_state"] == {(): 1.0}  # connected
        assert mine["corral_master_uptime_seconds"][()] > 0
        assert not LEADER_ONLY & set(mine), sorted(mine)
        snapshot = get_json(standby.address, "/metrics/snapshot")
        assert (snapshot["master/elected"], snapshot["master/zk_state"]) == (0, 1)
        assert "master/agents_registered" not in snapshot

        theirs = scrape(leader.address)
        assert theirs["corral_master_elected"] == {(): 1.0}
        assert theirs["corral_master_zk_state"] == {(): 1.0}
        assert LEADER_ONLY <= set(theirs)

        leader.stop()  # the standby takes over, and its /metrics become the leader's
        wait_for(lambda: standby.leading(), 30, "the standby to lead")
        now = scrape(standby.address)
        assert now["corral_master_elected"] == {(): 1.0}
        assert LEADER_ONLY <= set(now)
    finally:
        for m in masters:
            m.stop()


def test_a_master_without_zookeeper_says_so_in_its_metrics(tmp_path):
    master = MasterDaemon(MasterFlags(work_dir=tmp_path / "m", port=0))
    master.start()
    try:
        metrics = scrape(master.address)
        assert metrics["corral_master_elected"] == {(): 1.0}
        assert metrics["corral_master_zk_state"] == {(): 0.0}
    finally:
        master.stop()
