"""Contenders and the registry on a real ZooKeeper server."""
from __future__ import annotations

import threading

import pytest
from kazoo.client import KazooClient

from corral.engines.master import (
    AgentRecordState,
    ForgetAgent,
    ForgetFramework,
    RecordAgent,
    RecordFramework,
    RecordQuota,
    RecordWeight,
    RegistryState,
    apply_to_registry,
)
from corral.engines.master.leadership import Change, Standing
from corral.master.election import Contender
from corral.master.registry import registry_performers
from corral.master.zk_registry import RegistryFenced, ZooKeeperRegistry
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
    kz1, kz2, kz3 = client(zookeeper), client(zookeeper), client(zookeeper)
    try:
        old = ZooKeeperRegistry(kz1, url, "m1")
        old.take_over()
        memory = RegistryState()
        info = pb.AgentInfo(hostname="h1", id=pb.AgentID(value="a1"))
        actions = [
            RecordAgent("a1", info, AgentRecordState.ADMITTED, 1.0, "agent-1"),
            RecordAgent("a1", info, AgentRecordState.ADMITTED, 1.5),  # (no principal: the stored one kept)
            RecordAgent("a2", pb.AgentInfo(hostname="h2"), AgentRecordState.ADMITTED, 1.0, "agent-2"),
            RecordAgent("a2", None, AgentRecordState.UNREACHABLE, 7.5),
            RecordAgent("a3", pb.AgentInfo(hostname="h3"), AgentRecordState.ADMITTED, 2.0, "agent-3"),
            ForgetAgent("a3"),
            RecordAgent("a3", None, AgentRecordState.GONE, 2.0),
            RecordWeight("web", 2.5),
            RecordQuota("web", Resources.parse("cpus:4;mem:1024")),
            RecordQuota("db", Resources.parse("cpus:1")),
            RecordQuota("db", None),
            RecordFramework("f1", pb.FrameworkInfo(name="fw", user="root", failover_timeout=60.0)),
            RecordFramework("f2", pb.FrameworkInfo(name="gone", user="root")),
            ForgetFramework("f2"),
        ]
        performers = registry_performers(old)
        for action in actions:  # as the master daemon performs them
            performers[type(action)](action)
            apply_to_registry(memory, action)
        old.commit()  # (the daemon commits once per turn)

        new = ZooKeeperRegistry(kz2, url, "m2")
        new.take_over()
        state = new.state()
        assert state == memory
        assert state.admitted == {"a1": info} and state.unreachable == {"a2": 7.5} and state.gone == {"a3"}
        # who admitted each agent that may come back survives the take-over
        assert state.principals == {"a1": "agent-1", "a2": "agent-2"}
        assert state.weights == {"web": 2.5} and state.quotas == {"web": Resources.parse("cpus:4;mem:1024")}
        assert {f: i.failover_timeout for f, i in state.frameworks.items()} == {"f1": 60.0}

        # the old leader is fenced off: its writes fail and change nothing
        old.record_agent("a9", pb.AgentInfo(hostname="h9"), AgentRecordState.ADMITTED, 3.0)
        with pytest.raises(RegistryFenced):
            old.commit()
        old.set_weight("web", 9.0)
        with pytest.raises(RegistryFenced):
            old.commit()
        new.set_weight("db", 3.0)
        new.commit()
        third = ZooKeeperRegistry(kz3, url, "m3")
        third.take_over()
        assert set(third.state().admitted) == {"a1"} and third.state().weights == {"web": 2.5, "db": 3.0}
    finally:
        kz1.stop()
        kz2.stop()
        kz3.stop()


def test_garbage_in_a_registry_znode_is_logged_and_skipped(zookeeper, caplog):
    url = parse_zk_url(zookeeper.url("/ha"))
    kz = client(zookeeper)
    try:
        writer = ZooKeeperRegistry(kz, url, "m1")
        writer.take_over()
        writer.record_agent("a1", pb.AgentInfo(hostname="h1"), AgentRecordState.ADMITTED, 1.0)
        writer.commit()
        kz.create("/ha/registry/agents/nonsense", b"\xc1 not msgpack")
        kz.create("/ha/registry/weights", b"\x93\x01\x02\x03")  # a msgpack list, not a map
        registry = ZooKeeperRegistry(kz, url, "m2")
        with caplog.at_level("ERROR"):
            registry.take_over()
        assert set(registry.state().admitted) == {"a1"}
        assert any("/ha/registry/agents/nonsense" in p and "unreadable" in p for p in registry.unreadable)
        assert any("/ha/registry/weights" in p and "list" in p for p in registry.unreadable)
        assert "/ha/registry/agents/nonsense" in caplog.text
        registry.set_weight("web", 2.0)  # the next write replaces the garbage
        registry.commit()
        again = ZooKeeperRegistry(kz, url, "m3")
        again.take_over()
        assert again.state().weights == {"web": 2.0} and not any("weights" in p for p in again.unreadable)
    finally:
        kz.stop()


def test_garbage_in_a_contender_znode_is_a_clear_error():
    with pytest.raises(MasterInfoError, match="json.info_0000000042"):
        decode_master_info(b"{not json", "json.info_0000000042")
    with pytest.raises(MasterInfoError, match="address"):
        decode_master_info(b'{"id": "m"}', "json.info_0000000042")
