"""The Spark-like engine (corral.examples.spark) against PySpark and Dask (issue 21).

Same machine, same run, same input:
- wordcount over 200 MB of generated text (`gen-text --size 200MB --seed 1`, 4 files),
  written out as word<TAB>count part files: corral with 2 agents and one 1-cpu executor
  on each, against PySpark `local[2]` (the same RDD program: textFile, flatMap(split),
  map((w, 1)), reduceByKey(add), saveAsTextFile) and against `dask.bag` on
  `distributed.LocalCluster(n_workers=2, threads_per_worker=1)` (read_text, str.split,
  flatten, frequencies, to_textfiles); every system reads the input in 8 partitions.
  Target: corral at most 1.0x either's wall time.
- 10 000 no-op tasks, one stage, end to end: corral `parallelize(range(10000),
  10000).foreach(noop)` against Dask `client.gather(client.map(noop, range(10000)))`.
  Target: >= 2000 tasks/s and >= Dask's rate.
- wordcount with one executor SIGKILLed once half the map outputs exist, against the
  same wordcount without: at most 1.5x. Both start with the two executors up (the last
  round's victim replaced, untimed). Every killed round must be one failure, so the
  context's blacklist forgets a kill after 1 s: with its default (two executor losses on
  one agent within 60 s ban the agent for 60 s) the kills of successive rounds ban an
  agent, and the rounds after it run on one executor or wait for the ban to end.

Every system's session (cluster, context, JVM, worker processes) is started before the
first timing and stays up to the end, so each runs with the others idle beside it. The
200 MB input is generated once into $CORRAL_BENCH_DATA (default /tmp/corral-bench-data).
Needs the `bench` extra (pip install '.[bench]') and Java 17 (openjdk-17-jre-headless).

Run: python -m pytest benches/bench_spark.py --benchmark-only -s
(CORRAL_BENCH_ROUNDS=N for N rounds of each, default 3. In each round every system runs
once, the order rotated round by round; ratios are per round, then their median.)
"""
from __future__ import annotations

import operator
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import cloudpickle
import pytest

from corral.examples.spark import Context, programs
from corral.examples.spark.generate import generate_text
from corral.testing import LocalCluster

DATA = Path(os.environ.get("CORRAL_BENCH_DATA", "/tmp/corral-bench-data"))
SIZE = 200 * 1000 * 1000
ROUNDS = int(os.environ.get("CORRAL_BENCH_ROUNDS", "3"))
PARTITIONS = 8
NOOP_TASKS = 10_000
_RESULTS: dict[str, list[float]] = {}
_RATIOS: dict[str, list[float]] = {}


def noop(x: Any) -> None:
    return None


# the executors cannot import this module: its functions travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def text() -> Path:
    directory = DATA / "text-200MB-seed1"
    marker = directory / "_COMPLETE"
    if not marker.exists():
        shutil.rmtree(directory, ignore_errors=True)
        generate_text(directory, SIZE, seed=1, files=4)
        marker.touch()
    return directory


@pytest.fixture(scope="module")
def outputs() -> Iterator[Path]:
    out = Path(tempfile.mkdtemp(prefix="corral-bench-out-"))
    yield out
    shutil.rmtree(out, ignore_errors=True)


def fresh(outputs: Path, name: str) -> Path:
    path = outputs / name
    shutil.rmtree(path, ignore_errors=True)
    return path


# ------------------------------------------------------------------------- sessions
@pytest.fixture(scope="module")
def corral_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    with LocalCluster(tmp_path_factory.mktemp("bench-spark"), agents=2, resources="cpus:1;mem:3000;disk:4000",
                      log_level="WARNING") as cluster:
        with Context(cluster.master_address, app_name="bench", executors=2, executor_resources="cpus:1;mem:2500",
                     progress=False, blacklist_seconds=1.0) as ctx:  # one kill per round (see the docstring)
            yield ctx


@pytest.fixture(scope="module")
def spark_context() -> Iterator[Any]:
    pyspark = pytest.importorskip("pyspark", reason="pip install '.[bench]'")
    if shutil.which("java") is None:
        pytest.skip("PySpark needs Java: apt-get install -y openjdk-17-jre-headless")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    conf = (pyspark.SparkConf().setMaster("local[2]").setAppName("bench").set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false"))
    sc = pyspark.SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    yield sc
    sc.stop()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed", reason="pip install '.[bench]'")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module", autouse=True)
def sessions(request: pytest.FixtureRequest) -> None:
    """All three up before anything is timed (the same background for every system)."""
    for name in ("corral_ctx", "spark_context", "dask_client"):
        request.getfixturevalue(name)


# ------------------------------------------------------------------------ wordcount
def corral_wordcount(ctx: Context, text: Path, out: Path) -> None:
    programs.word_counts(ctx, str(text)).map(programs._tab_separated).save_as_text_file(out)


def pyspark_wordcount(sc: Any, text: Path, out: Path) -> None:
    (sc.textFile(str(text), PARTITIONS).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add)
     .map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFile(str(out)))


def dask_wordcount(client: Any, text: Path, out: Path) -> None:
    import dask.bag as db

    files = sorted(str(p) for p in text.glob("part-*"))
    bag = db.read_text(files, blocksize=SIZE // PARTITIONS + 1)
    bag.str.split().flatten().frequencies().map(lambda kv: f"{kv[0]}\t{kv[1]}").to_textfiles(f"{out}/part-*")


def alternate(benchmark: Any, runs: dict[str, Callable[[], None]],
              prepare: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """ROUNDS rounds; in each, every run once (after `prepare`, untimed), the order
    rotated from round to round, so that the load of the machine weighs on all alike;
    their wall times by name."""
    times: dict[str, list[float]] = {name: [] for name in runs}

    def rounds() -> None:
        names = list(runs)
        for index in range(ROUNDS):
            for name in names[index % len(names):] + names[:index % len(names)]:
                prepare()
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    benchmark.extra_info.update({name: values for name, values in times.items()})
    _RESULTS.update(times)
    return times


def ratios(times: dict[str, list[float]], name: str, baseline: str) -> list[float]:
    """Per-round ratios of `name` to `baseline`."""
    return [a / b for a, b in zip(times[name], times[baseline])]


@pytest.mark.timeout(3600)
def test_wordcount(benchmark: Any, corral_ctx: Context, spark_context: Any, dask_client: Any, text: Path,
                   outputs: Path) -> None:
    times = alternate(benchmark, {
        "wordcount corral": lambda: corral_wordcount(corral_ctx, text, fresh(outputs, "corral")),
        "wordcount pyspark local[2]": lambda: pyspark_wordcount(spark_context, text, fresh(outputs, "pyspark")),
        "wordcount dask": lambda: dask_wordcount(dask_client, text, fresh(outputs, "dask")),
    })
    _RATIOS["corral / pyspark wordcount (target <= 1.0)"] = ratios(times, "wordcount corral", "wordcount pyspark local[2]")
    _RATIOS["corral / dask wordcount (target <= 1.0)"] = ratios(times, "wordcount corral", "wordcount dask")
    counts = sum(int(line.split("\t")[1]) for p in (outputs / "corral").glob("part-*") for line in open(p))
    assert counts == sum(len(line.split()) for p in text.glob("part-*") for line in open(p))


@pytest.mark.timeout(3600)
def test_wordcount_with_an_executor_killed_half_way(benchmark: Any, corral_ctx: Context, text: Path,
                                                    outputs: Path) -> None:
    def killed() -> None:
        killer = threading.Thread(target=kill_half_way, args=(corral_ctx,), daemon=True)
        killer.start()
        corral_wordcount(corral_ctx, text, fresh(outputs, "corral-killed"))
        killer.join()
        assert corral_ctx.last_job.recomputed >= 1

    def undisturbed() -> None:
        corral_wordcount(corral_ctx, text, fresh(outputs, "corral"))

    times = alternate(benchmark, {"wordcount corral (for the kill)": undisturbed,
                                  "wordcount corral, an executor killed half way": killed},
                      prepare=lambda: wait_for_executors(corral_ctx, 2))  # the last victim's replacement
    _RATIOS["killed half way / undisturbed (target <= 1.5)"] = ratios(
        times, "wordcount corral, an executor killed half way", "wordcount corral (for the kill)")


@pytest.mark.timeout(3600)
def test_noop_tasks(benchmark: Any, corral_ctx: Context, dask_client: Any) -> None:
    wait_for_executors(corral_ctx, 2)
    times = alternate(benchmark, {
        "10k no-op tasks corral": lambda: corral_ctx.parallelize(range(NOOP_TASKS), NOOP_TASKS).foreach(noop),
        "10k no-op tasks dask": lambda: dask_client.gather(dask_client.map(noop, range(NOOP_TASKS), pure=False)),
    })
    assert corral_ctx.last_job.tasks == NOOP_TASKS
    _RATIOS["dask time / corral time for 10k no-op tasks (target >= 1.0)"] = ratios(
        times, "10k no-op tasks dask", "10k no-op tasks corral")


def wait_for_executors(ctx: Context, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(ctx.executor_status()) < count:
        assert time.monotonic() < deadline, "the replacement executor did not start"
        time.sleep(0.05)


def kill_half_way(ctx: Context) -> None:
    """SIGKILL the executor holding most map outputs once half of them exist."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        views = ctx.executor_status()
        if sum(v.map_outputs for v in views) >= PARTITIONS // 2:
            os.kill(max(views, key=lambda v: v.map_outputs).pid, signal.SIGKILL)
            return
        time.sleep(0.02)


# ----------------------------------------------------------------- no-op tasks
def teardown_module() -> None:
    if not _RESULTS:
        return
    lines = ["", "corral.examples.spark against PySpark and Dask (wall seconds per round, same run, "
                 "rounds alternated):"]
    for name, times in _RESULTS.items():
        lines.append(f"  {name}: median {statistics.median(times):.2f}s ({', '.join(f'{t:.2f}' for t in times)})")
    for name, values in _RATIOS.items():
        lines.append(f"  {name}: median {statistics.median(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})")
    for name in ("10k no-op tasks corral", "10k no-op tasks dask"):
        if name in _RESULTS:
            lines.append(f"  {name}: {NOOP_TASKS / statistics.median(_RESULTS[name]):.0f} tasks/s (median round)")
    print("\n".join(lines))
