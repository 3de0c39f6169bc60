"""The RDD API in local mode (executors in the test's process): every transformation
and action against a plain-Python computation of the same data."""
from __future__ import annotations

import collections
import operator
import os
import threading
from pathlib import Path

import pytest

from corral.examples.spark import Context, HashPartitioner, JobFailed, RemoteTraceback, SerialisationError


def test_narrow_transformations_pipeline_within_partitions(ctx: Context) -> None:
    data = list(range(50))
    rdd = ctx.parallelize(data, 4)
    assert rdd.map(lambda x: x * 3).filter(lambda x: x % 2 == 0).collect() == [x * 3 for x in data if x * 3 % 2 == 0]
    assert rdd.flat_map(lambda x: [x] * (x % 3)).collect() == [x for x in data for _ in range(x % 3)]
    assert rdd.map_partitions(lambda it: [sum(it)]).collect() == [sum(data[i * 50 // 4:(i + 1) * 50 // 4])
                                                                  for i in range(4)]
    assert rdd.map_partitions_with_index(lambda i, it: [(i, len(list(it)))]).collect() == [(0, 12), (1, 13), (2, 12),
                                                                                            (3, 13)]
    assert [len(p) for p in rdd.glom().collect()] == [12, 13, 12, 13]
    pairs = rdd.key_by(lambda x: x % 5)
    assert pairs.map_values(str).take(3) == [(0, "0"), (1, "1"), (2, "2")]
    assert pairs.flat_map_values(lambda v: [v, -v]).values().take(4) == [0, 0, 1, -1]
    assert pairs.keys().collect() == [x % 5 for x in data]


def test_reductions_by_key_equal_plain_python(ctx: Context) -> None:
    words = [f"w{i % 17}" for i in range(1000)] + ["solo"]
    rdd = ctx.parallelize(words, 5).map(lambda w: (w, 1))
    expected = collections.Counter(words)
    assert dict(rdd.reduce_by_key(operator.add).collect()) == expected
    assert dict(rdd.reduce_by_key(lambda a, b: a + b, 3).collect()) == expected
    assert {k: sorted(v) for k, v in rdd.group_by_key().collect()} == {w: [1] * n for w, n in expected.items()}
    sums = rdd.aggregate_by_key([], lambda acc, v: acc + [v], operator.add).map_values(len).collect()
    assert dict(sums) == expected
    combined = rdd.combine_by_key(lambda v: {v}, lambda s, v: s | {v}, operator.or_).collect()
    assert dict(combined) == {w: {1} for w in expected}
    assert rdd.count_by_key() == expected
    assert ctx.parallelize(words, 3).count_by_value() == expected
    assert sorted(ctx.parallelize(words, 4).distinct().collect()) == sorted(set(words))


def test_keys_with_none_and_tuples_partition_consistently(ctx: Context) -> None:
    keys = [None, (None, 1), (1, None), ("a", (None,)), 0, "x"]
    rdd = ctx.parallelize([(k, 1) for k in keys * 10], 6)
    assert dict(rdd.reduce_by_key(operator.add, 4).collect()) == {k: 10 for k in keys}


def test_joins_match_nested_loops(ctx: Context) -> None:
    left = [(i % 7, f"l{i}") for i in range(30)]
    right = [(i % 5, f"r{i}") for i in range(12)] + [(99, "only right")]
    expected = sorted((k, (v, w)) for k, v in left for k2, w in right if k == k2)
    assert sorted(ctx.parallelize(left, 3).join(ctx.parallelize(right, 2)).collect()) == expected
    outer = sorted(ctx.parallelize(left, 3).left_outer_join(ctx.parallelize(right, 2), 4).collect())
    missing = sorted((k, (v, None)) for k, v in left if k not in {k2 for k2, _ in right})
    assert outer == sorted(expected + missing)


def test_a_join_of_co_partitioned_rdds_reads_no_new_shuffle(ctx: Context) -> None:
    links = ctx.parallelize([(i % 10, i) for i in range(100)], 4).group_by_key(4).cache()
    ranks = links.map_values(lambda _: 1.0)
    joined = links.join(ranks)
    assert joined.partitioner == HashPartitioner(4)
    assert joined.count() == 10
    assert ctx.last_job.stages == 2  # the group_by_key shuffle and the join's stage
    assert joined.count() == 10
    assert ctx.last_job.stages == 1  # links is cached: no shuffle at all


def test_sort_by_orders_across_partitions(ctx: Context) -> None:
    data = [(i * 7919) % 1000 for i in range(1000)]
    rdd = ctx.parallelize(data, 5)
    assert rdd.sort_by(lambda x: x).collect() == sorted(data)
    assert rdd.sort_by(lambda x: x, ascending=False, num_partitions=3).collect() == sorted(data, reverse=True)
    pairs = rdd.map(lambda x: (x % 13, x))
    assert [k for k, _ in pairs.sort_by_key(num_partitions=4).collect()] == sorted(x % 13 for x in data)


def test_union_and_repartition_keep_every_record(ctx: Context) -> None:
    a, b = ctx.parallelize(range(10), 2), ctx.parallelize(range(100, 105), 3)
    assert a.union(b).collect() == list(range(10)) + list(range(100, 105))
    assert ctx.union([a, b, a]).count() == 25
    spread = ctx.parallelize(range(1000), 1).repartition(4)
    sizes = [len(p) for p in spread.glom().collect()]
    assert sorted(spread.collect()) == list(range(1000))
    assert len(sizes) == 4 and max(sizes) - min(sizes) <= 1


def test_actions(ctx: Context) -> None:
    rdd = ctx.parallelize(range(1, 101), 4)
    assert rdd.count() == 100 and rdd.sum() == 5050
    assert rdd.reduce(operator.mul) == __import__("math").factorial(100)
    assert rdd.fold(0, operator.add) == 5050
    assert rdd.take(30) == list(range(1, 31)) and rdd.take(1000) == list(range(1, 101))
    assert rdd.first() == 1
    assert rdd.top(3) == [100, 99, 98] and rdd.top(2, key=lambda x: -x) == [1, 2]
    empty = ctx.parallelize([], 3)
    with pytest.raises(ValueError, match="empty"):
        empty.reduce(operator.add)
    with pytest.raises(ValueError, match="empty"):
        empty.first()
    assert empty.take(5) == [] and empty.count() == 0 and empty.collect_as_map() == {}
    seen = ctx.accumulator(0)
    rdd.foreach(lambda x: seen.add(x))
    assert seen.value == 5050


def test_cache_computes_each_partition_once(ctx: Context) -> None:
    computed = ctx.accumulator(0)

    def count_it(x: int) -> int:
        computed.add(1)
        return x

    rdd = ctx.parallelize(range(40), 4).map(count_it).cache()
    assert rdd.sum() == sum(range(40)) and computed.value == 40
    assert rdd.count() == 40 and computed.value == 40  # from the executors' memory
    rdd.unpersist()
    assert rdd.count() == 40 and computed.value == 80


def test_broadcast_values_reach_tasks(ctx: Context) -> None:
    table = ctx.broadcast({i: i * i for i in range(10)})
    assert ctx.parallelize(range(10), 3).map(lambda x: table.value[x]).collect() == [i * i for i in range(10)]
    assert table.value[3] == 9


def test_save_as_text_file_writes_one_part_per_partition(ctx: Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ctx.parallelize([("a", 1), "b", 3], 2).save_as_text_file(out)
    assert sorted(os.listdir(out)) == ["_SUCCESS", "part-00000", "part-00001"]
    assert (out / "part-00000").read_text() + (out / "part-00001").read_text() == "('a', 1)\nb\n3\n"
    with pytest.raises(FileExistsError, match=str(out)):
        ctx.parallelize([1]).save_as_text_file(out)


def test_text_file_reads_each_line_exactly_once_across_splits(tmp_path: Path) -> None:
    lines = [f"line {i} " + "x" * (i % 13) for i in range(500)] + ["", "é ü ñ", "last without newline"]
    (tmp_path / "a.txt").write_text("\n".join(lines))
    (tmp_path / "b.txt").write_text("one\r\ntwo\r\n")
    (tmp_path / "_ignored").write_text("not input\n")
    for block in (7, 64, 1000, 1 << 20):
        with Context("local[2]", progress=False, text_block_size=block) as small:
            rdd = small.text_file(str(tmp_path))
            assert rdd.collect() == lines + ["one", "two"], block
            assert small.text_file(str(tmp_path / "*.txt")).count() == len(lines) + 2


def test_bad_input_is_refused_before_anything_runs(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        ctx.text_file(str(tmp_path / "nope"))
    lock = threading.Lock()
    with pytest.raises(SerialisationError, match=r"map at test_rdd_local.py:\d+"):
        ctx.parallelize([1]).map(lambda x: (x, lock))
    with pytest.raises(SerialisationError, match="Context cannot be sent"):
        ctx.parallelize([1]).map(lambda x: ctx.default_parallelism)
    with pytest.raises(ValueError, match="master must be HOST:PORT"):
        Context("nowhere")
    with pytest.raises(ValueError, match="'cpus:x' does not parse"):
        Context("127.0.0.1:1", executor_resources="cpus:x")
    with pytest.raises(FileNotFoundError, match="missing.py"):
        Context("127.0.0.1:1", py_files=[str(tmp_path / "missing.py")])


class Odd(Exception):
    pass


def test_a_task_that_keeps_failing_fails_the_job_with_the_users_exception(ctx: Context) -> None:
    def boom(x: int) -> int:
        if x == 7:
            raise Odd(f"seven is odd ({x})")
        return x

    with pytest.raises(Odd, match=r"seven is odd \(7\)") as caught:
        ctx.parallelize(range(10), 2).map(boom).collect()
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "in boom" in caught.value.__cause__.text
    assert any("failed 4 times" in note for note in caught.value.__notes__)
    summary = ctx.last_job
    assert not summary.succeeded and summary.retries == 3


def test_an_exception_that_does_not_pickle_still_fails_the_job_clearly(ctx: Context) -> None:
    class Local(Exception):  # defined in a function: pickles by value, unpickles fine
        pass

    def fail(x: int) -> None:
        raise Local(threading.Lock())  # holds something unpicklable

    with pytest.raises(JobFailed, match="Local"):
        ctx.parallelize([1], 1).foreach(fail)


def test_shuffles_and_caches_of_garbage_collected_rdds_are_dropped(ctx: Context) -> None:
    import gc

    def held() -> tuple[int, int, int]:
        views = ctx.executor_status()  # (answered once the drops queued before it are done)
        files = len(list(ctx._backend.work_dir.glob("*/shuffle/*.data")))
        return sum(v.map_outputs for v in views), sum(v.cached_partitions for v in views), files

    def counts() -> tuple[int, int, int]:
        rdd = ctx.parallelize(range(100), 4).map(lambda x: (x % 3, 1)).reduce_by_key(operator.add).cache()
        assert dict(rdd.collect()) == {0: 34, 1: 33, 2: 33}
        return held()

    gc.collect()  # what earlier tests left
    outputs, cached, files = held()
    assert counts() == (outputs + 4, cached + 4, files + 4)
    assert held() == (outputs, cached, files)  # freed by reference counting: no cycle holds a job's RDDs
