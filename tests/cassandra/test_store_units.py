"""The store's parts alone: tokens and replica placement, last write wins, and the
storage's commit log, flushes, scans, digests and hints."""
from __future__ import annotations

import random

import mmh3
import pytest

from corral.examples.cassandra.cells import reconcile, wins
from corral.examples.cassandra.ring import (
    MAX_TOKEN,
    MIN_TOKEN,
    Consistency,
    TokenRing,
    in_range,
    pending_replicas,
    random_tokens,
    range_size,
    split_range,
    token_of,
)
from corral.examples.cassandra.storage import Storage, SyncMode


def test_tokens_are_the_first_64_bits_of_murmur3_x64_128():
    assert token_of(b"key") == int.from_bytes(mmh3.hash_bytes(b"key")[:8], "little", signed=True)
    assert all(MIN_TOKEN < token_of(b"k%d" % i) <= MAX_TOKEN for i in range(1000))


def ring_of(nodes: int, rf: int, vnodes: int = 8, seed: int = 1) -> TokenRing:
    rng = random.Random(seed)
    taken: list[int] = []
    owners = {}
    for n in range(nodes):
        owners[f"n{n}"] = random_tokens(vnodes, rng, taken)
        taken += owners[f"n{n}"]
    return TokenRing.build(owners, rf)


def test_replicas_are_the_distinct_owners_clockwise_from_the_token():
    ring = ring_of(5, 3)
    for i in range(500):
        token = token_of(b"%d" % i)
        replicas = ring.replicas(token)
        assert len(set(replicas)) == 3
        # the first replica owns the first vnode token at or after the key's token
        first = min((t for t in ring.tokens if t >= token), default=ring.tokens[0])
        assert replicas[0] == ring.owners[ring.tokens.index(first)]
    # every node holds RF/N of the data, and the fractions add up to RF
    assert sum(ring.ownership(f"n{n}") for n in range(5)) == pytest.approx(3.0)
    assert ring_of(3, 3).ownership("n1") == pytest.approx(1.0)


def test_ranges_wrap_and_split_into_equal_pieces():
    assert in_range(MAX_TOKEN, (10, -10)) and in_range(MIN_TOKEN + 1, (10, -10)) and not in_range(0, (10, -10))
    assert range_size((5, 5)) == 2**64
    pieces = split_range((MAX_TOKEN - 100, MIN_TOKEN + 100), 4)
    assert len(pieces) == 4 and pieces[0][0] == MAX_TOKEN - 100 and pieces[-1][1] == MIN_TOKEN + 100
    assert sum(range_size(p) for p in pieces) == range_size((MAX_TOKEN - 100, MIN_TOKEN + 100))


def test_a_joining_node_is_pending_exactly_for_the_ranges_it_gains():
    before = ring_of(3, 2)
    rng = random.Random(9)
    joined = dict((n, [t for t, o in zip(before.tokens, before.owners) if o == n]) for n in before.nodes)
    joined["n3"] = random_tokens(8, rng, before.tokens)
    after = TokenRing.build(joined, 2)
    pending = pending_replicas(before, after)
    assert pending and all(nodes == ("n3",) for _, nodes in pending)
    for i in range(300):
        token = token_of(b"%d" % i)
        gains = "n3" in after.replicas(token)
        assert gains == any(in_range(token, rng_) for rng_, _ in pending)


def test_consistency_levels():
    assert [Consistency.parse(x).block_for(3) for x in ("one", "QUORUM", "All")] == [1, 2, 3]
    assert Consistency.QUORUM.block_for(5) == 3
    with pytest.raises(ValueError, match="'TWO'"):
        Consistency.parse("TWO")


def test_last_write_wins_and_ties_go_to_tombstones_then_to_the_greater_value():
    assert reconcile((2, b"a"), (1, b"b")) == (2, b"a")
    assert reconcile((1, b"b"), (2, None)) == (2, None)
    assert reconcile((5, b"a"), (5, None)) == (5, None) and reconcile((5, None), (5, b"z")) == (5, None)
    assert reconcile((5, b"a"), (5, b"b")) == (5, b"b") == reconcile((5, b"b"), (5, b"a"))
    assert wins((1, b"x"), (1, b"x")) and reconcile(None, (1, b"x")) == (1, b"x")


def test_the_commit_log_replays_after_a_crash_and_a_torn_tail_is_ignored(tmp_path):
    storage = Storage(tmp_path, SyncMode.BATCH)
    storage.apply(b"a", (1, b"one"))
    storage.apply(b"b", (2, b"two"))
    storage.apply(b"a", (3, None))
    storage.commit()
    storage.add_hint("h1", b"id1", b"c", (4, b"hinted"))
    storage.commit()
    segment = storage.log._path(storage.log.current)
    storage.apply(b"torn", (5, b"never acknowledged"))
    storage.commit()
    # a crash cuts the last record short; nothing is closed cleanly
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])
    storage.env.close()
    again = Storage(tmp_path, SyncMode.BATCH)
    assert again.get(b"a") == (3, None) and again.get(b"b") == (2, b"two") and again.get(b"torn") is None
    assert again.hints_for("h1", 10) == [(b"id1", b"c", (4, b"hinted"))]
    again.close()


def test_flushes_merge_into_lmdb_and_drop_the_old_segments(tmp_path):
    storage = Storage(tmp_path, SyncMode.PERIODIC, memtable_bytes=10_000)
    for i in range(500):
        storage.apply(b"k%03d" % i, (i, b"x" * 50))
    storage.commit()
    assert storage.flushes >= 1 and len(storage.log.segments()) == 1
    storage.apply(b"k001", (0, b"older"))  # loses to what was flushed
    assert storage.get(b"k001") == (1, b"x" * 50)
    storage.hint_done("nobody", b"x")
    storage.add_hint("t", b"h", b"k", (1, b"v"))
    storage.flush()
    storage.hint_done("t", b"h")
    assert storage.hints_for("t", 5) == [] and storage.hint_targets() == set()
    storage.close()
    again = Storage(tmp_path)
    assert again.get(b"k499") == (499, b"x" * 50) and again.hint_targets() == set()
    again.close()


def test_scans_follow_token_order_in_chunks_and_digests_tell_equal_data(tmp_path):
    a, b = Storage(tmp_path / "a"), Storage(tmp_path / "b")
    cells = [(b"key%d" % i, (i, b"v%d" % i)) for i in range(300)]
    for key, cell in cells:
        a.apply(key, cell)
    b.ingest(reversed(cells))
    everything = (MIN_TOKEN, MIN_TOKEN)  # left == right: the whole ring
    out, after, chunks = [], None, 0
    while True:
        part, after = a.scan(everything, after, max_bytes=500)
        out += part
        chunks += 1
        if after is None:
            break
    assert chunks > 5 and sorted(out) == sorted(cells)
    assert [token_of(k) for k, _ in out] == sorted(token_of(k) for k, _ in out)
    pieces = split_range(everything, 8)
    assert a.digests(pieces) == b.digests(pieces)
    b.apply(b"key7", (1000, b"changed"))
    differing = [i for i, (x, y) in enumerate(zip(a.digests(pieces), b.digests(pieces))) if x != y]
    assert differing == [i for i, p in enumerate(pieces) if in_range(token_of(b"key7"), p)]
    a.close()
    b.close()


def test_compaction_drops_tombstones_past_the_grace_and_keeps_everything_else(tmp_path):
    clock = [100.0]
    storage = Storage(tmp_path, SyncMode.PERIODIC, clock=lambda: clock[0])
    for i in range(20):
        storage.apply(b"live%d" % i, (i, b"v"))
        storage.apply(b"dead%d" % i, (i, None))
    storage.flush()  # the tombstones reach LMDB at local time 100
    clock[0] = 200.0
    storage.apply(b"late", (1, None))
    storage.flush()  # and this one at 200
    everything = (MIN_TOKEN, MIN_TOKEN)
    assert storage.purge_tombstones(deleted_before=100.0) == (0, None)  # none deleted before 100
    # past the grace of the first twenty only, in batches of 7 cells looked at
    purged, after, rounds = 0, None, 0
    while True:
        count, after = storage.purge_tombstones(150.0, after, limit=7)
        purged, rounds = purged + count, rounds + 1
        if after is None:
            break
    assert purged == 20 and rounds == 6  # 41 cells looked at, 7 a batch
    cells, _ = storage.scan(everything)
    assert sorted(k for k, _ in cells) == sorted([b"live%d" % i for i in range(20)] + [b"late"])
    assert storage.get(b"dead3") is None and storage.get(b"late") == (1, None)
    storage.close()


def test_compaction_leaves_a_key_the_memtable_holds_and_a_rewritten_tombstone_keeps_its_time(tmp_path):
    clock = [100.0]
    storage = Storage(tmp_path, SyncMode.PERIODIC, clock=lambda: clock[0])
    storage.apply(b"k", (10, None))
    storage.flush()
    clock[0] = 500.0
    storage.apply(b"k", (5, b"older write arriving late"))  # loses to the tombstone
    assert storage.purge_tombstones(deleted_before=400.0) == (0, None)  # the memtable holds k: kept
    storage.flush()  # the tombstone stays as it was stored, deletion time 100, not 500
    assert storage.get(b"k") == (10, None)
    assert storage.purge_tombstones(deleted_before=400.0) == (1, None)
    assert storage.get(b"k") is None
    storage.close()


def test_digests_ignore_when_each_replica_stored_a_tombstone(tmp_path):
    a = Storage(tmp_path / "a", clock=lambda: 1.0)
    b = Storage(tmp_path / "b", clock=lambda: 2.0)
    for storage in (a, b):
        storage.apply(b"gone", (7, None))
        storage.apply(b"here", (8, b"v"))
    pieces = split_range((MIN_TOKEN, MIN_TOKEN), 4)
    assert a.digests(pieces) == b.digests(pieces)
    a.close()
    b.close()
