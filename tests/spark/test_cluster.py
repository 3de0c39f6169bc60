"""The example programs on a real corral cluster (a master and two agents, each its own
process; executors are corral tasks running `python -m corral.examples.spark.executor`),
against plain-Python computations of the same input."""
from __future__ import annotations

import operator
from pathlib import Path
from typing import Iterator

import pytest

from corral.examples.spark import Context, programs
from corral.examples.spark.generate import generate_graph, generate_text
from corral.testing import LocalCluster
from corral.testing.cluster import get_json

import reference

pytestmark = pytest.mark.slow  # real processes: a master, two agents, executors


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("spark-cluster"), agents=2) as c:
        yield c


@pytest.fixture(scope="module")
def ctx(cluster: LocalCluster) -> Iterator[Context]:
    with Context(cluster.master_address, app_name="spark-tests", executors=2, progress=False) as context:
        yield context


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_text(tmp_path_factory.mktemp("text"), 3_000_000, seed=7, files=3)


def test_executors_are_corral_tasks_spread_over_both_agents(cluster: LocalCluster, ctx: Context) -> None:
    executors = [e for a in cluster.agents for e in get_json(a.address, "/state")["executors"]]
    assert len(executors) == 2
    agents = {fw_task["agent_id"] for fw in cluster.state()["frameworks"] if fw["name"] == "spark-tests"
              for fw_task in fw["tasks"]}
    assert len(agents) == 2
    assert set(ctx.executor_pids()) == {e["id"] for e in executors}


def test_wordcount_equals_plain_python(ctx: Context, text: list[Path], tmp_path: Path) -> None:
    top = programs.wordcount(ctx, [str(p) for p in text], tmp_path / "out", top=5)
    expected = reference.word_counts(text)
    written = dict(line.split("\t") for line in reference.read_parts(tmp_path / "out"))
    assert {word: int(count) for word, count in written.items()} == expected
    assert top == sorted(expected.items(), key=operator.itemgetter(1), reverse=True)[:5]
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_pagerank_equals_plain_python(ctx: Context, tmp_path: Path) -> None:
    edges = generate_graph(tmp_path / "edges.txt", nodes=300, edges=3000, seed=3)
    ranks = dict(programs.page_ranks(ctx, edges, iterations=5).collect())
    expected = reference.page_ranks(edges, 5)
    assert ranks.keys() == expected.keys()
    assert ranks == pytest.approx(expected, rel=1e-9)


def test_sort_equals_plain_python(ctx: Context, text: list[Path], tmp_path: Path) -> None:
    programs.sort(ctx, [str(p) for p in text], tmp_path / "sorted")
    assert reference.read_parts(tmp_path / "sorted") == sorted(reference.lines_of(text))


def test_join_equals_plain_python(ctx: Context) -> None:
    left = [(i % 97, i) for i in range(3000)]
    right = [(i % 89, -i) for i in range(500)]
    joined = ctx.parallelize(left, 4).join(ctx.parallelize(right, 3), 5).collect()
    assert sorted(joined) == sorted((k, (v, w)) for k, v in left for k2, w in right if k == k2)


def test_broadcasts_accumulators_and_cache_across_executor_processes(ctx: Context) -> None:
    table = ctx.broadcast({i: str(i) * 2 for i in range(100)})
    computed = ctx.accumulator(0)

    def look_up(x: int) -> str:
        computed.add(1)
        return table.value[x % 100]

    rdd = ctx.parallelize(range(1000), 8).map(look_up).cache()
    assert rdd.count() == 1000 and computed.value == 1000
    assert rdd.map(len).sum() == sum(len(str(i % 100)) * 2 for i in range(1000))
    assert computed.value == 1000  # the second job read the executors' cached partitions
    assert ctx.last_job.tasks == 8


def test_py_files_ship_the_programs_modules_to_the_executors(cluster: LocalCluster, tmp_path: Path) -> None:
    import sys
    import zipfile

    (tmp_path / "spark_test_shapes.py").write_text("def area(side):\n    return side * side\n")
    with zipfile.ZipFile(tmp_path / "deps.zip", "w") as z:
        z.writestr("spark_test_units/__init__.py", "def label(x):\n    return f'{x} m2'\n")
    sys.path[:0] = [str(tmp_path), str(tmp_path / "deps.zip")]
    try:
        import spark_test_shapes
        import spark_test_units

        with Context(cluster.master_address, executors=1, progress=False) as bare:
            with pytest.raises(ModuleNotFoundError, match="spark_test_shapes"):
                bare.parallelize([1, 2], 2).map(spark_test_shapes.area).collect()
        py_files = [str(tmp_path / "spark_test_shapes.py"), str(tmp_path / "deps.zip")]
        with Context(cluster.master_address, executors=1, progress=False, py_files=py_files) as shipped:
            squares = shipped.parallelize([1, 2, 3], 2).map(spark_test_shapes.area).map(spark_test_units.label)
            assert squares.collect() == ["1 m2", "4 m2", "9 m2"]
    finally:
        del sys.path[:2]
