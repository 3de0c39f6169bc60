"""Benchmarks for corral.resources: the operations the allocator runs in its inner loop.

Run: pytest benches/bench_resources.py --benchmark-only
"""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture

from corral.resources import Resources

AGENT = "cpus:8;mem:15360;disk:102400;ports:[31000-32000]"

# Ten resources each: unreserved and reserved scalars, ranges and a set.
TOTAL = Resources.parse(
    "cpus:8;mem:15360;disk:102400;ports:[31000-32000];gpus:{g0,g1,g2,g3};"
    "cpus(web):4;mem(web):2048;disk(web):1000;net:1000;ephemeral_ports:[40000-50000]"
)
TASK = Resources.parse(
    "cpus:1;mem:128;disk:10;ports:[31005-31005,31100-31101];gpus:{g1};"
    "cpus(web):0.5;mem(web):64;disk(web):1;net:10;ephemeral_ports:[40000-40100]"
)


def test_parse_agent_string(benchmark: BenchmarkFixture) -> None:
    assert benchmark(Resources.parse, AGENT).cpus == 8.0


def test_add(benchmark: BenchmarkFixture) -> None:
    assert benchmark(TOTAL.__add__, TASK).cpus == 13.5


def test_subtract(benchmark: BenchmarkFixture) -> None:
    assert benchmark(TOTAL.__sub__, TASK).cpus == 10.5


def test_contains(benchmark: BenchmarkFixture) -> None:
    assert benchmark(TOTAL.contains, TASK)


def test_contains_miss(benchmark: BenchmarkFixture) -> None:
    """A request that fails on its last resource: the allocator's common case."""
    too_big = TASK + Resources.parse("ephemeral_ports:[50001-50001]")
    assert not benchmark(TOTAL.contains, too_big)
