"""Contenders and the registry on a real ZooKeeper server."""
from __future__ import annotations

import threading

import pytest
from kazoo.client import KazooClient

from corral.engines.master import AgentRecordState
from corral.master.election import Change, Contender, Standing
from corral.master.zk_registry import RegistryCorrupt, RegistryFenced, ZooKeeperRegistry
from corral.net.zookeeper import (
    MasterInfoError,
    contender_sequence,
    decode_master_info,
    encode_master_info,
    leader_of,
    parse_zk_url,
)
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.testing.cluster import wait_for


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.event = threading.Event()

    def __call__(self, change: Change) -> None:
        self.changes.append(change)
        self.event.set()


def contender(zookeeper, name: str, port: int) -> tuple[Contender, Recorder]:
    recorder = Recorder()
    info = encode_master_info(name, "localhost", "127.0.0.1", port, "0.1.0")
    c = Contender(parse_zk_url(zookeeper.url("/ha")), info, recorder, session_timeout=2.0)
    c.start()
    return c, recorder


def client(zookeeper) -> KazooClient:
    kz = KazooClient(hosts=zookeeper.connect_string, timeout=4.0)
    kz.start(timeout=10)
    return kz


def test_the_first_contender_leads_and_the_next_takes_over_when_it_withdraws(zookeeper):
    first, first_seen = contender(zookeeper, "m1", 5051)
    assert first_seen.event.wait(15) and first_seen.changes == [Change.ELECTED]
    second, second_seen = contender(zookeeper, "m2", 5052)
    kz = client(zookeeper)
    try:
        children = wait_for(lambda: len(c := kz.get_children("/ha")) == 2 and c, 10, "two contenders")
        assert all(contender_sequence(c) is not None for c in children)
        leader = leader_of(children)
        assert leader == first.leadership.candidacy
        data, _ = kz.get(f"/ha/{leader}")
        found = decode_master_info(data, leader)
        assert (found.master_id, found.http_address) == ("m1", "127.0.0.1:5051")
        assert second.leadership.standing is Standing.CONTENDING and not second.leadership.acts(second.clock())
        first.stop()
        assert second_seen.event.wait(15) and second_seen.changes == [Change.ELECTED]
        assert second.leadership.acts(second.clock())
    finally:
        second.stop()
        kz.stop()


def test_a_leader_whose_session_is_closed_under_it_is_deposed(zookeeper):
    leader, seen = contender(zookeeper, "m1", 5051)
    assert seen.event.wait(15)
    seen.event.clear()
    kz = client(zookeeper)
    try:
        kz.delete(f"/ha/{leader.leadership.candidacy}")  # as when its session expires
        assert seen.event.wait(15) and seen.changes == [Change.ELECTED, Change.DEPOSED]
        assert not leader.leadership.acts(leader.clock())
    finally:
        leader.stop()
        kz.stop()


def test_the_registry_survives_a_take_over_and_fences_the_old_leader(zookeeper):
    url = parse_zk_url(zookeeper.url("/ha"))
    kz1, kz2 = client(zookeeper), client(zookeeper)
    try:
        old = ZooKeeperRegistry(kz1, url, "m1")
        old.take_over()
        info = pb.AgentInfo(hostname="h1", id=pb.AgentID(value="a1"))
        old.record_agent("a1", info, AgentRecordState.ADMITTED, 1.0)
        old.record_agent("a2", pb.AgentInfo(hostname="h2"), AgentRecordState.ADMITTED, 1.0)
        old.record_agent("a2", None, AgentRecordState.UNREACHABLE, 7.5)
        old.record_agent("a3", pb.AgentInfo(hostname="h3"), AgentRecordState.GONE, 2.0)
        old.set_weight("web", 2.5)
        old.set_quota("web", Resources.parse("cpus:4;mem:1024"))
        old.record_framework("f1", pb.FrameworkInfo(name="fw", user="root", failover_timeout=60.0))

        new = ZooKeeperRegistry(kz2, url, "m2")
        new.take_over()
        state = new.agents()
        assert state.admitted == {"a1": info}
        assert state.unreachable == {"a2": 7.5} and state.gone == {"a3"}
        assert new.weights() == {"web": 2.5}
        assert new.quotas()["web"] == Resources.parse("cpus:4;mem:1024")
        assert [(f.framework_id, f.info.failover_timeout) for f in new.frameworks()] == [("f1", 60.0)]

        fenced = []
        old.on_fenced = fenced.append
        with pytest.raises(RegistryFenced):
            old.record_agent("a9", pb.AgentInfo(hostname="h9"), AgentRecordState.ADMITTED, 3.0)
        with pytest.raises(RegistryFenced):
            old.set_weight("web", 9.0)
        assert len(fenced) == 2
        third = ZooKeeperRegistry(client(zookeeper), url, "m3")
        third.take_over()
        assert set(third.agents().admitted) == {"a1"} and third.weights() == {"web": 2.5}
    finally:
        kz1.stop()
        kz2.stop()


def test_garbage_in_a_registry_or_contender_znode_is_a_clear_error(zookeeper):
    url = parse_zk_url(zookeeper.url("/ha"))
    kz = client(zookeeper)
    try:
        kz.create("/ha/registry/agents/007", b"\xc1 not msgpack", makepath=True)
        registry = ZooKeeperRegistry(kz, url, "m1")
        with pytest.raises(RegistryCorrupt, match="/ha/registry/agents/007"):
            registry.take_over()
        with pytest.raises(MasterInfoError, match="json.info_0000000042"):
            decode_master_info(b"{not json", "json.info_0000000042")
        with pytest.raises(MasterInfoError, match="address"):
            decode_master_info(b'{"id": "m"}', "json.info_0000000042")
    finally:
        kz.stop()
