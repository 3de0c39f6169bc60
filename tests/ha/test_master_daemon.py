"""A master daemon with --zk, in this process, on a real ZooKeeper server: fenced off its
registry by another master's take-over, it reports the operator's change as not done,
stops leading at once, and contends again as a standby with a new id."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient

from corral.master.daemon import MasterDaemon, MasterFlags
from corral.master.zk_registry import ZooKeeperRegistry
from corral.net.zookeeper import parse_zk_url
from corral.testing.cluster import get_json, wait_for


def test_a_fenced_leader_reports_the_change_undone_and_rejoins_as_a_standby(zookeeper, tmp_path):
    daemon = MasterDaemon(MasterFlags(work_dir=tmp_path / "master", port=0, zk=zookeeper.url(),
                                      zk_session_timeout=4.0))
    daemon.start()
    kz = KazooClient(hosts=zookeeper.connect_string, timeout=10.0)
    kz.start(timeout=30)
    try:
        wait_for(lambda: get_json(daemon.address, "/info")["leader"], 30, "the master to lead")
        first_id = daemon.master_id
        # another master takes the leader epoch (as one elected after a partition would)
        ZooKeeperRegistry(kz, parse_zk_url(zookeeper.url()), "usurper").take_over()
        request = urllib.request.Request(f"http://{daemon.address}/weights", method="POST",
                                         data=json.dumps([{"role": "web", "weight": 3.0}]).encode())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=15)
        assert refused.value.code == 503
        assert "nothing was changed" in json.loads(refused.value.read())["error"]
        # it stopped leading at once and contends again, a new candidacy
        assert get_json(daemon.address, "/health")["role"] == "standby"
        health = wait_for(lambda: (h := get_json(daemon.address, "/health"))["deposed_reason"] and h, 10,
                          "the reason it stopped leading")
        assert "registry write failed" in health["deposed_reason"]
        wait_for(lambda: daemon.master_id != first_id, 10, "a new candidacy")
        # the weight never reached the registry
        reader = ZooKeeperRegistry(kz, parse_zk_url(zookeeper.url()), "reader")
        reader.take_over()
        assert reader.state().weights == {}
        # with the usurper gone, it leads again, from the registry
        wait_for(lambda: get_json(daemon.address, "/info")["leader"], 30, "the master to lead again")
        assert get_json(daemon.address, "/metrics/snapshot")["master/elected"] == 1
    finally:
        kz.stop()
        daemon.stop()
