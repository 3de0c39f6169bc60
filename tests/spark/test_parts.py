"""The engine's smaller parts: input splits, range bounds, hashing across processes,
sizes, the generators, and what the progress output says."""
from __future__ import annotations

import io
import operator
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corral.examples.spark import Context
from corral.examples.spark.generate import generate_graph, generate_text, parse_size
from corral.examples.spark.partitioner import HashPartitioner, RangePartitioner, range_bounds
from corral.examples.spark.rdd import text_splits


def test_text_splits_are_equal_and_a_multiple_of_the_cores(tmp_path: Path) -> None:
    files = []
    for i, size in enumerate([50_000_017, 50_000_022, 49_999_990, 50_000_015]):
        path = tmp_path / f"f{i}"
        with open(path, "wb") as f:
            f.truncate(size)
        files.append(str(path))
    splits = text_splits(files, 2, 32 << 20, 2)
    assert len(splits) == 8 and max(s[2] for s in splits) - min(s[2] for s in splits) <= 20
    assert sum(s[2] for s in splits) == sum(50_000_000 + d for d in (17, 22, -10, 15))
    assert len(text_splits(files[:1], 3, 32 << 20, 3)) == 3


def test_range_bounds_split_weighted_samples_evenly() -> None:
    samples = [(1000, list(range(0, 100))), (1000, list(range(100, 200)))]
    bounds = range_bounds(samples, 4)
    assert len(bounds) == 3 and bounds == sorted(bounds)
    part = RangePartitioner(bounds).partition_func()
    sizes = [0] * 4
    for key in range(200):
        sizes[part(key)] += 1
    assert max(sizes) - min(sizes) <= 2
    down = RangePartitioner(bounds, ascending=False).partition_func()
    assert down(0) == 3 and down(199) == 0
    assert range_bounds([(5, [1, 1, 1])], 3) == [1]  # repeated keys give fewer bounds, never repeated ones


def test_hash_partitioning_agrees_across_processes_with_the_same_seed() -> None:
    keys = "[None, (None, 1), ('a', (None, 2.5)), 'word', 42, frozenset({1, 2})]"
    program = ("from corral.examples.spark.partitioner import HashPartitioner;"
               f"p = HashPartitioner(7).partition_func(); print([p(k) for k in {keys}])")

    def run(seed: str) -> str:
        return subprocess.run([sys.executable, "-c", program], env={"PYTHONHASHSEED": seed}, capture_output=True,
                              text=True, check=True).stdout

    assert run("123") == run("123")
    assert HashPartitioner(7) == HashPartitioner(7) != HashPartitioner(8)


def test_sizes_parse_in_decimal_and_binary_units() -> None:
    assert parse_size("200MB") == 200_000_000 and parse_size("64MiB") == 64 << 20 and parse_size("1500") == 1500
    assert parse_size("1.5 GB") == 1_500_000_000 and parse_size("2k") == 2000
    with pytest.raises(ValueError, match="not a size: '12 parsecs'"):
        parse_size("12 parsecs")


def test_generators_are_deterministic(tmp_path: Path) -> None:
    a = generate_text(tmp_path / "a", 300_000, seed=5, files=2)
    b = generate_text(tmp_path / "b", 300_000, seed=5, files=2)
    c = generate_text(tmp_path / "c", 300_000, seed=6, files=2)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b] != [p.read_bytes() for p in c]
    assert all(150_000 <= p.stat().st_size < 150_200 for p in a)
    lines = a[0].read_text().splitlines()
    assert all(5 <= len(line.split()) <= 15 for line in lines)
    g1 = generate_graph(tmp_path / "g1", 100, 1000, seed=1).read_text()
    assert g1 == generate_graph(tmp_path / "g2", 100, 1000, seed=1).read_text()
    edges = [tuple(map(int, line.split())) for line in g1.splitlines()]
    assert 900 < len(edges) <= 1000 and all(s != d and 0 <= s < 100 and 0 <= d < 100 for s, d in edges)


def test_progress_off_a_terminal_is_plain_lines_and_a_summary() -> None:
    stream = io.StringIO()
    with Context("local[2]", progress=None, stream=stream) as ctx:
        ctx.parallelize(range(100), 4).map(lambda x: (x % 2, x)).reduce_by_key(operator.add, 2).collect()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert re.fullmatch(r"job 1: stage 1/2 \(map at test_parts.py:\d+\) started, 4 task\(s\)", lines[0])
    assert any(re.fullmatch(r"job 1: stage 2/2 \(reduce_by_key at test_parts.py:\d+\) done", line) for line in lines)
    assert lines[-1].startswith("job 1 (collect) finished in ") and "2 stage(s), 6 task(s), 0 retried" in lines[-1]
