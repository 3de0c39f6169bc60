"""ZooKeeper authentication, Mesos' way, on a real ZooKeeper server: masters given
zk://USER:PASSWORD@HOST:PORT/PATH authenticate with the digest scheme and create the
election znodes readable by everyone but writable by USER only, and the registry's
znodes readable and writable by USER only. A client without the credentials (or with a
wrong password) finds the leader but cannot change the election or the registry;
masters with them elect and fail over; followers with them follow; the password shows
nowhere."""
from __future__ import annotations

import json
import logging
import threading
import urllib.request

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from corral.master.daemon import MasterDaemon, MasterFlags
from corral.net.zookeeper import decode_master_info, parse_zk_url
from corral.runtime.detector import ZooKeeperDetector, leader_http_address
from corral.testing.cluster import get_json, wait_for

SECRET = "s3cr@t-Pa55"


def intruder(zookeeper, auth: str | None = None) -> KazooClient:
    client = KazooClient(hosts=zookeeper.connect_string, timeout=10.0,
                         auth_data=[("digest", auth)] if auth else None)
    client.start(timeout=30)
    return client


def post(address: str, path: str, body: object) -> int:
    request = urllib.request.Request(f"http://{address}{path}", method="POST", data=json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status


def text(address: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as response:
        return response.read().decode()


def assert_cannot_change(client: KazooClient, leader_znode: str) -> None:
    """The election and the registry under /corral are out of `client`'s reach, but
    it can read who leads."""
    assert decode_master_info(client.get(leader_znode)[0], leader_znode).port > 0  # world-readable
    changes = [
        lambda: client.set(leader_znode, b"{}"),
        lambda: client.delete(leader_znode),
        lambda: client.create("/corral/json.info_", b"{}", ephemeral=True, sequence=True),
        lambda: client.get_children("/corral/registry"),
        lambda: client.get("/corral/registry/weights"),
        lambda: client.set("/corral/registry/epoch", b"usurper"),
        lambda: client.set("/corral/registry/weights", b"\x80"),
        lambda: client.delete("/corral/registry", recursive=True),
        lambda: client.create("/corral/registry/agents/000", b"\x80"),
        lambda: client.set_acls("/corral", OPEN_ACL_UNSAFE),
    ]
    for change in changes:
        with pytest.raises(NoAuthError):
            change()


def test_masters_with_credentials_keep_the_election_and_registry_theirs_and_fail_over(zookeeper, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    url = f"zk://corral:{SECRET}@{zookeeper.connect_string}/corral"
    outsider = intruder(zookeeper)
    wrong = intruder(zookeeper, "corral:not-the-password")
    outsider.ensure_path("/corral")  # an open path made before the masters came: they close it
    masters = [MasterDaemon(MasterFlags(work_dir=tmp_path / f"m{i}", port=0, zk=url, zk_session_timeout=4.0))
               for i in range(2)]
    found: list[str] = []
    changed = threading.Event()
    detector = ZooKeeperDetector(parse_zk_url(url), lambda transport: (found.append(transport), changed.set()))
    try:
        for m in masters:
            m.start()
        leader = wait_for(lambda: next((m for m in masters if m.leading()), None), 30, "a leader")
        standby = next(m for m in masters if m is not leader)
        assert post(leader.address, "/weights", [{"role": "web", "weight": 2.0}]) == 200
        leader_znode = f"/corral/{leader.contender.leadership.candidacy}"
        for client in (outsider, wrong):
            assert_cannot_change(client, leader_znode)

        detector.detect()
        wait_for(lambda: found and found[-1] == leader.transport_address, 15, "the detector to find the leader")
        assert leader_http_address(url) == leader.address
        # (and so does a follower without them: the contenders are readable by everyone)
        assert leader_http_address(f"zk://{zookeeper.connect_string}/corral") == leader.address

        for m in masters:  # the password shows nowhere
            assert get_json(m.address, "/flags")["zk"] == f"zk://corral:****@{zookeeper.connect_string}/corral"
            for path in ("/flags", "/health", "/info", "/metrics", "/metrics/snapshot"):
                assert SECRET not in text(m.address, path), path
        assert SECRET not in text(leader.address, "/state")

        leader.stop()  # the standby takes over, and writes the registry the first leader made
        wait_for(lambda: standby.leading(), 30, "the standby to lead")
        assert post(standby.address, "/weights", [{"role": "db", "weight": 3.0}]) == 200
        weights = get_json(standby.address, "/weights")["weights"]
        assert weights == [{"role": "db", "weight": 3.0}, {"role": "web", "weight": 2.0}]
        wait_for(lambda: found[-1] == standby.transport_address, 15, "the detector to follow the new leader")
        assert_cannot_change(outsider, f"/corral/{standby.contender.leadership.candidacy}")
    finally:
        detector.stop()
        for m in masters:
            m.stop()
        outsider.stop()
        wrong.stop()
    assert SECRET not in caplog.text
    assert "zk://corral:****@" in caplog.text  # (the URL is logged, masked)
