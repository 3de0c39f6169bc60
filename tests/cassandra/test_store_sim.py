"""The store under a deterministic, fault-injecting network (corral.examples.cassandra.
simulation): partitions, dropped and delayed frames, crashes, joins, replacements and
decommissions, across many seeds. `CASSANDRA_SIM_SEEDS=N` runs N seeds (default 12)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.examples.cassandra.messages import ErrorKind, Verb
from corral.examples.cassandra.node import Mode
from corral.examples.cassandra.simulation import NetworkFaults, SimCluster

SEEDS = range(int(os.environ.get("CASSANDRA_SIM_SEEDS", "12")))
ADDR = {n: f"n{n}:7000" for n in range(5)}
SEED_NODES = [ADDR[0], ADDR[1]]


def ring_of_three(root: Path, seed: int, faults: NetworkFaults | None = None, **config) -> SimCluster:
    cluster = SimCluster(root, seed, faults, **config)
    for i in range(3):
        cluster.start_node(f"n{i}", SEED_NODES)
        cluster.run_until(lambda: cluster.nodes[ADDR[i]].mode is Mode.NORMAL, 60)
    cluster.run_until(lambda: cluster.all_normal(["n0", "n1", "n2"]), 60)
    return cluster


def local(cluster: SimCluster, n: int, key: bytes):
    cell = cluster.storages[ADDR[n]].get(key)
    return None if cell is None else cell[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_quorum_writes_succeed_with_a_replica_cut_off_and_hints_reach_it_after_the_heal(tmp_path, seed):
    cluster = ring_of_three(tmp_path, seed)
    cluster.isolate(ADDR[2])
    cluster.run_until(lambda: cluster.states(ADDR[0]).get("n2") == "DN", 60)  # convicted by n0's detector
    client = cluster.client()
    keys = [b"k%d" % i for i in range(200)]
    rids = [client.put(ADDR[i % 2], k, b"v-" + k) for i, k in enumerate(keys)]
    assert [client.wait(r) for r in rids] == [(None, None)] * len(keys)
    assert all(local(cluster, 2, k) is None for k in keys)
    # hints: at once for a replica known to be down, after the write timeout for one not yet convicted
    cluster.run_for(2 * cluster.config["write_timeout"])
    hints = sum(cluster.nodes[ADDR[i]].counters["hints_written"] for i in (0, 1))
    assert hints == len(keys)
    cluster.heal()
    cluster.run_until(lambda: all(local(cluster, 2, k) == b"v-" + k for k in keys), 60)
    cluster.run_until(lambda: all(cluster.nodes[ADDR[i]].counters["hints_delivered"] for i in (0, 1)), 30)
    assert sum(cluster.nodes[ADDR[i]].counters["hints_delivered"] for i in (0, 1)) == len(keys)
    assert not cluster.storages[ADDR[0]].hints_for("anything", 1)
    cluster.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_no_acknowledged_quorum_write_is_lost_on_a_lossy_partitioned_network(tmp_path, seed):
    faults = NetworkFaults(drop=0.03, min_delay=0.0005, max_delay=0.03)
    cluster = ring_of_three(tmp_path, seed, faults)
    client = cluster.client()
    acked: dict[bytes, bytes] = {}
    pending: dict[int, tuple[bytes, bytes]] = {}
    rng = cluster.rng
    for round_ in range(6):
        victim = ADDR[rng.randrange(3)]
        if round_ % 2 == 0:
            cluster.isolate(victim)
        for i in range(60):
            key = b"k%d" % rng.randrange(150)
            value = b"%d-%d" % (round_, i)
            coordinator = ADDR[rng.randrange(3)]
            # client timestamps: last write wins orders the writes as the client made them
            pending[client.put(coordinator, key, value, timestamp=round_ * 1000 + i)] = (key, value)
        cluster.run_for(rng.uniform(0.5, 4.0))
        cluster.heal()
        cluster.run_for(1.0)
    cluster.run_for(5.0)
    for rid, (key, value) in pending.items():
        error, _ = client.results.get(rid, ("lost", None))
        if error is None:
            acked.setdefault(key, b"")
            acked[key] = max(acked[key], value, key=lambda v: tuple(int(x) for x in v.split(b"-")) if v else (-1,))
    assert acked, "some writes must have been acknowledged"
    cluster.faults = NetworkFaults()
    cluster.run_until(lambda: cluster.all_normal(), 60)
    reads = {key: client.get(ADDR[rng.randrange(3)], key) for key in acked}
    for key, rid in reads.items():
        error, value = client.wait(rid)
        assert error is None, (seed, key, error)
        newest = tuple(int(x) for x in value.split(b"-"))
        assert newest >= tuple(int(x) for x in acked[key].split(b"-")), (seed, key, value, acked[key])
    cluster.close()


def test_a_read_at_quorum_repairs_a_stale_replica(tmp_path):
    cluster = ring_of_three(tmp_path, 7, hinted_handoff=False)
    client = cluster.client()
    assert client.wait(client.put(ADDR[0], b"key", b"old", "ALL")) == (None, None)
    cluster.isolate(ADDR[2])
    assert client.wait(client.put(ADDR[0], b"key", b"new", "QUORUM")) == (None, None)
    cluster.heal()
    assert local(cluster, 2, b"key") == b"old"
    # n2 coordinates: it reads its own (stale) data and one digest, which differs
    assert client.wait(client.get(ADDR[2], b"key", "QUORUM")) == (None, b"new")
    assert local(cluster, 2, b"key") == b"new"
    assert cluster.nodes[ADDR[2]].counters["read_repairs"] >= 1
    cluster.close()


def test_repair_brings_a_replica_that_missed_writes_up_to_date(tmp_path):
    cluster = ring_of_three(tmp_path, 3, hinted_handoff=False)
    client = cluster.client()
    cluster.isolate(ADDR[2])
    keys = [b"r%d" % i for i in range(300)]
    for k in keys:
        assert client.wait(client.put(ADDR[0], k, b"v")) == (None, None)
    assert client.wait(client.delete(ADDR[0], keys[0])) == (None, None)
    cluster.heal()
    cluster.run_until(lambda: cluster.all_normal(), 60)
    assert sum(local(cluster, 2, k) is not None for k in keys) == 0
    error, stats = client.wait(client.request(ADDR[0], Verb.REPAIR), 120)
    assert error is None and stats["mismatched_segments"] > 0 and stats["cells_sent"] >= len(keys)
    assert [local(cluster, 2, k) for k in keys[1:]] == [b"v"] * (len(keys) - 1)
    assert cluster.storages[ADDR[2]].get(keys[0])[1] is None  # the tombstone was repaired too
    error, stats = client.wait(client.request(ADDR[1], Verb.REPAIR), 120)
    assert error is None and stats["mismatched_segments"] == 0
    cluster.close()


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_a_node_joins_streams_its_ranges_then_decommissions_and_no_write_is_lost(tmp_path, seed):
    cluster = ring_of_three(tmp_path, seed)
    client = cluster.client()
    keys = [b"j%d" % i for i in range(400)]
    for i, k in enumerate(keys):
        assert client.wait(client.put(ADDR[i % 3], k, b"v" + k)) == (None, None)
    cluster.start_node("n3", SEED_NODES)
    # writes keep coming while it joins
    during = [client.put(ADDR[i % 3], b"d%d" % i, b"during") for i in range(100)]
    cluster.run_until(lambda: cluster.states(ADDR[0]).get("n3") == "UJ", 30)
    cluster.run_until(lambda: cluster.all_normal(["n0", "n1", "n2", "n3"]), 60)
    assert [client.wait(r)[0] for r in during] == [None] * len(during)
    joined = cluster.nodes[ADDR[3]]
    assert joined.counters["streamed_cells"] > 0
    owned = [k for k in keys if joined.host_id in cluster.nodes[ADDR[0]].ring.replicas_for_key(k)]
    assert owned and all(local(cluster, 3, k) == b"v" + k for k in owned)
    for k in keys + [b"d%d" % i for i in range(100)]:
        error, value = client.wait(client.get(ADDR[3], k, "QUORUM"))
        assert error is None and value is not None, (k, error)
    # and leaves again
    assert client.wait(client.request(ADDR[3], Verb.DECOMMISSION)) == (None, "decommissioning")
    cluster.run_until(lambda: cluster.nodes[ADDR[3]].mode is Mode.DECOMMISSIONED, 60)
    cluster.crash(ADDR[3])
    cluster.run_until(lambda: cluster.all_normal(["n0", "n1", "n2"]), 60)
    for k in keys:
        assert client.wait(client.get(ADDR[0], k, "ALL")) == (None, b"v" + k)
    cluster.close()


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_a_dead_node_is_replaced_by_a_new_one_that_streams_its_data(tmp_path, seed):
    cluster = ring_of_three(tmp_path, seed)
    client = cluster.client()
    keys = [b"p%d" % i for i in range(300)]
    for i, k in enumerate(keys):
        assert client.wait(client.put(ADDR[i % 3], k, b"v" + k, "ALL")) == (None, None)
    dead = cluster.nodes[ADDR[2]].host_id
    cluster.crash(ADDR[2])
    cluster.run_until(lambda: cluster.states(ADDR[0]).get("n2") == "DN", 60)
    # a write while it is down: on n0 and n1, and hinted for n2
    assert client.wait(client.put(ADDR[0], b"late", b"write")) == (None, None)
    cluster.start_node("n3", SEED_NODES, replace=ADDR[2])
    cluster.run_until(lambda: cluster.all_normal(["n0", "n1", "n3"]), 90)
    assert dead not in cluster.nodes[ADDR[0]].gossip.endpoints
    assert all(local(cluster, 3, k) == b"v" + k for k in keys)  # RF 3 of 3: the new node holds everything
    cluster.run_until(lambda: local(cluster, 3, b"late") == b"write", 30)  # the hint followed the tokens
    for k in keys[:50]:
        assert client.wait(client.get(ADDR[3], k, "ALL")) == (None, b"v" + k)
    cluster.close()


def test_replacing_a_live_node_is_refused(tmp_path):
    cluster = ring_of_three(tmp_path, 5)
    node = cluster.start_node("n3", SEED_NODES, replace=ADDR[2])
    cluster.run_until(lambda: node.fatal, 60)
    assert "it is alive" in node.fatal
    cluster.close()


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_a_crashed_node_loses_no_write_it_acknowledged(tmp_path, seed):
    cluster = ring_of_three(tmp_path, seed)
    client = cluster.client()
    rids = {client.put(ADDR[0], b"c%d" % i, b"v%d" % i, "ALL"): i for i in range(300)}
    cluster.run_for(cluster.rng.uniform(0.0005, 0.01))  # some are answered, some are in flight
    cluster.crash(ADDR[1])
    cluster.run_for(3)
    acked = [i for rid, i in rids.items() if client.results.get(rid, ("x",))[0] is None]
    cluster.restart(ADDR[1])
    cluster.run_until(lambda: cluster.all_normal(), 60)
    # an ALL write was acknowledged by n1 itself: it must hold it after the crash
    assert all(local(cluster, 1, b"c%d" % i) == b"v%d" % i for i in acked)
    cluster.close()


def test_bad_requests_get_a_clear_error_and_change_nothing(tmp_path):
    cluster = ring_of_three(tmp_path, 1)
    client = cluster.client()
    error, _ = client.wait(client.put(ADDR[0], b"k", b"v", "TWO"))
    assert error[0] == ErrorKind.INVALID.value and "TWO" in error[1]
    error, _ = client.wait(client._request(ADDR[0], Verb.PUT, b"", b"v", "ONE", None))
    assert error[0] == ErrorKind.INVALID.value and "key" in error[1]
    cluster.deliver(b"client", ADDR[0], [(Verb.GET,), ("nonsense", 1), (99, 2), (Verb.SHUTDOWN, "x", 1),
                                         (Verb.MUTATE, 9, b"k", 1, b"forged")])
    cluster.run_for(0.1)
    assert cluster.nodes[ADDR[0]].counters["malformed"] == 7  # the two above, and these five
    assert local(cluster, 0, b"k") is None  # a client cannot send what only nodes send
    error, _ = client.wait(client.request(ADDR[0], Verb.DECOMMISSION))
    assert error[0] == ErrorKind.INVALID.value and "replication factor 3" in error[1]
    assert cluster.nodes[ADDR[0]].mode is Mode.NORMAL
    assert client.wait(client.get(ADDR[0], b"k", "ALL")) == (None, None)
    cluster.isolate(ADDR[1])
    cluster.isolate(ADDR[2])
    cluster.run_until(lambda: cluster.states(ADDR[0])["n1"] == "DN" and cluster.states(ADDR[0])["n2"] == "DN", 60)
    error, _ = client.wait(client.put(ADDR[0], b"k", b"v", "QUORUM"))
    assert error[0] == ErrorKind.UNAVAILABLE.value and "needs 2 live replicas" in error[1]
    assert local(cluster, 0, b"k") is None  # refused before anything was written
    cluster.close()


def test_tombstones_outlive_the_gc_grace_so_repair_spreads_them_then_compaction_drops_them(tmp_path):
    cluster = ring_of_three(tmp_path, 11, hinted_handoff=False, gc_grace=60.0, compaction_interval=5.0)
    client = cluster.client()
    keys = [b"t%d" % i for i in range(100)]
    deleted, kept = keys[:50], keys[50:]
    for k in keys:
        assert client.wait(client.put(ADDR[0], k, b"v")) == (None, None)
    cluster.run_for(1.0)  # every replica has every write (QUORUM answered, the third followed)
    cluster.isolate(ADDR[2])  # n2 misses the deletes, and hints are off
    for k in deleted:
        assert client.wait(client.delete(ADDR[0], k)) == (None, None)
    cluster.heal()
    cluster.run_until(lambda: cluster.all_normal(), 60)
    cluster.run_for(30.0)  # compactions run, within the grace
    stored = {n: cluster.storages[ADDR[n]] for n in range(3)}
    assert all(cluster.nodes[ADDR[n]].counters["compactions"] >= 5 for n in range(3))
    assert all(stored[n].get(k) is not None and stored[n].get(k)[1] is None for n in (0, 1) for k in deleted)
    assert all(local(cluster, 2, k) == b"v" for k in deleted)
    # repair within the grace brings n2 the tombstones
    error, stats = client.wait(client.request(ADDR[2], Verb.REPAIR), 120)
    assert error is None and stats["cells_sent"] >= len(deleted)
    assert all(stored[2].get(k)[1] is None for k in deleted)
    assert sum(cluster.nodes[ADDR[n]].counters["tombstones_purged"] for n in range(3)) == 0
    # past the grace of every replica's tombstones (n2 stored its own at the repair): dropped
    cluster.run_for(60.0 + 2 * 5.0)
    assert all(stored[n].get(k) is None for n in range(3) for k in deleted)
    assert sum(cluster.nodes[ADDR[n]].counters["tombstones_purged"] for n in range(3)) == 3 * len(deleted)
    for k in keys:
        expected = None if k in deleted else b"v"
        assert client.wait(client.get(ADDR[int(k[1:]) % 3], k, "ALL")) == (None, expected), k
    assert all(stored[n].get(k) == stored[0].get(k) for n in range(3) for k in kept)
    cluster.close()


def test_hints_older_than_the_gc_grace_are_dropped_not_delivered(tmp_path):
    cluster = ring_of_three(tmp_path, 13, gc_grace=20.0)
    client = cluster.client()
    cluster.isolate(ADDR[2])
    cluster.run_until(lambda: cluster.states(ADDR[0]).get("n2") == "DN", 60)
    keys = [b"h%d" % i for i in range(30)]
    for k in keys:
        assert client.wait(client.put(ADDR[0], k, b"v")) == (None, None)
    assert cluster.nodes[ADDR[0]].counters["hints_written"] == len(keys)
    cluster.run_for(25.0)  # n2 stays cut off past the grace
    cluster.heal()
    cluster.run_until(lambda: cluster.nodes[ADDR[0]].counters["hints_expired"] == len(keys), 30)
    cluster.run_for(5.0)
    assert cluster.nodes[ADDR[0]].counters["hints_delivered"] == 0
    assert all(local(cluster, 2, k) is None for k in keys)
    assert cluster.storages[ADDR[0]].hint_targets() == set()
    cluster.close()
