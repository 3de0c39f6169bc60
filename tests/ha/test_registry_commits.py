"""The registry in ZooKeeper stages its writes and commits them together: every znode
changed since the last commit written once, in one fenced transaction (several, in
order, past TRANSACTION_BYTES), all of it or none. On a real ZooKeeper server."""
from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

from corral.engines.master import AgentRecordState
from corral.master import zk_registry
from corral.master.zk_registry import RegistryFenced, ZooKeeperRegistry, bucket_of
from corral.net.zookeeper import parse_zk_url
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

AGENTS = [f"agent-{i:03d}" for i in range(300)]


@pytest.fixture
def kz(zookeeper):
    client = KazooClient(hosts=zookeeper.connect_string, timeout=10.0)
    client.start(timeout=30)
    yield client
    client.stop()


def count_transactions(client: KazooClient) -> list[int]:
    made: list[int] = []
    transaction = client.transaction

    def counted():
        made.append(1)
        return transaction()

    client.transaction = counted  # type: ignore[method-assign]
    return made


def stage_a_batch(registry: ZooKeeperRegistry) -> None:
    for agent_id in AGENTS:
        registry.record_agent(agent_id, pb.AgentInfo(hostname=agent_id), AgentRecordState.ADMITTED, 0.0)
    registry.record_framework("fw", pb.FrameworkInfo(user="u", name="fw", failover_timeout=60.0))
    registry.set_weight("web", 2.0)
    registry.set_quota("web", Resources.parse("cpus:4"))


def read(kz: KazooClient, url) -> ZooKeeperRegistry:
    reader = ZooKeeperRegistry(kz, url, "reader")
    reader.take_over()
    return reader


def test_a_batch_is_one_fenced_transaction_writing_each_znode_once(zookeeper, kz):
    url = parse_zk_url(zookeeper.url())
    registry = ZooKeeperRegistry(kz, url, "leader")
    registry.take_over()
    transactions = count_transactions(kz)
    stage_a_batch(registry)
    registry.forget_agent(AGENTS[0])
    buckets = {bucket_of(a) for a in AGENTS}
    assert registry.staged == len(buckets) + 3  # agents' buckets, the framework's, weights, quotas
    assert transactions == []  # nothing written yet
    registry.commit()
    assert len(transactions) == 1 and registry.staged == 0
    registry.commit()  # nothing staged: nothing written
    assert len(transactions) == 1
    state = read(kz, url).state()
    assert set(state.admitted) == set(AGENTS[1:])
    assert set(state.frameworks) == {"fw"} and state.weights == {"web": 2.0}
    assert state.quotas == {"web": Resources.parse("cpus:4")}


def test_a_batch_that_fails_commits_none_of_its_writes(zookeeper, kz):
    url = parse_zk_url(zookeeper.url())
    registry = ZooKeeperRegistry(kz, url, "leader")
    registry.take_over()
    registry.record_agent("first", pb.AgentInfo(hostname="first"), AgentRecordState.ADMITTED, 0.0)
    registry.commit()
    # one znode of the batch refuses the write (an operator made it read-only)
    kz.set_acls(f"{url.path}/registry/agents/{bucket_of('first')}", [make_acl("world", "anyone", read=True)])
    stage_a_batch(registry)
    registry.record_agent("first", None, AgentRecordState.UNREACHABLE, 5.0)
    with pytest.raises(NoAuthError):
        registry.commit()
    state = read(kz, url).state()
    assert set(state.admitted) == {"first"} and not state.unreachable
    assert not state.frameworks and not state.weights and not state.quotas


def test_a_fenced_batch_commits_none_of_its_writes(zookeeper, kz):
    url = parse_zk_url(zookeeper.url())
    old = ZooKeeperRegistry(kz, url, "old")
    old.take_over()
    stage_a_batch(old)
    ZooKeeperRegistry(kz, url, "new").take_over()  # another master was elected meanwhile
    with pytest.raises(RegistryFenced):
        old.commit()
    state = read(kz, url).state()
    assert not state.admitted and not state.frameworks and not state.weights


def test_a_batch_past_the_transaction_limit_is_split_and_all_written(zookeeper, kz, monkeypatch):
    monkeypatch.setattr(zk_registry, "TRANSACTION_BYTES", 4096)
    url = parse_zk_url(zookeeper.url())
    registry = ZooKeeperRegistry(kz, url, "leader")
    registry.take_over()
    transactions = count_transactions(kz)
    stage_a_batch(registry)
    registry.commit()
    assert len(transactions) > 3 and registry.staged == 0
    assert set(read(kz, url).state().admitted) == set(AGENTS)


def test_a_bucket_removed_behind_the_leaders_back_is_created_again(zookeeper, kz):
    url = parse_zk_url(zookeeper.url())
    registry = ZooKeeperRegistry(kz, url, "leader")
    registry.take_over()
    registry.record_agent("a1", pb.AgentInfo(hostname="h1"), AgentRecordState.ADMITTED, 0.0)
    registry.record_agent("a2", pb.AgentInfo(hostname="h2"), AgentRecordState.ADMITTED, 0.0)
    registry.commit()
    kz.delete(f"{url.path}/registry/agents/{bucket_of('a1')}")
    registry.record_agent("a1", None, AgentRecordState.UNREACHABLE, 9.0)
    registry.record_agent("a3", pb.AgentInfo(hostname="h3"), AgentRecordState.ADMITTED, 0.0)
    registry.commit()
    state = read(kz, url).state()
    assert state.unreachable == {"a1": 9.0} and {"a3"} <= set(state.admitted)
