"""Benchmarks for corral.engines.master.allocator, shaped like Mesos' HierarchicalAllocator
benchmarks (published, Mesos 1.8 C++: one cycle of 1k agents x 100 frameworks about 0.05 s,
10k agents x 1k frameworks about 1.1 s, about 9.4k offers/s).

Run: python -m pytest benches/bench_allocator.py --benchmark-only

- full cycle: every agent is free; one `allocate` hands all of them out (targets: 1k x 100
  <= 50 ms, 10k x 1k <= 1 s). offers/s = agents / median cycle time (one offer per agent).
- declined cycle: every framework has declined every agent with a long filter, so a cycle
  visits every framework on every agent and offers nothing (the worst case of filters).
- add/remove agent at 10k agents: the cost of admitting and forgetting one agent while
  the cluster is fully allocated.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from corral.engines.master.allocator import Allocator
from corral.resources import Resources

AGENT = Resources.parse("cpus:16;mem:65536;disk:1000000;ports:[31000-32000]")
ROLES = ("analytics", "batch", "services/web", "services/db", "ml")


def build(agents: int, frameworks: int) -> Allocator:
    allocator = Allocator()
    for role in ROLES:
        allocator.set_weight(role, 1 + ROLES.index(role) % 3)
    for index in range(frameworks):
        allocator.add_framework(f"framework-{index:05d}", [ROLES[index % len(ROLES)]])
    for index in range(agents):
        allocator.add_agent(f"agent-{index:06d}", AGENT)
    return allocator


@pytest.mark.parametrize("agents,frameworks", [(1_000, 100), (10_000, 1_000)])
def test_full_cycle(benchmark: BenchmarkFixture, agents: int, frameworks: int) -> None:
    benchmark.group = "allocator: one full cycle"
    rounds = 10 if agents <= 1_000 else 3

    def setup() -> tuple[tuple[Allocator], dict[str, object]]:
        return (build(agents, frameworks),), {}

    offers = benchmark.pedantic(
        lambda allocator: allocator.allocate(0.0), setup=setup, rounds=rounds, iterations=1
    )
    assert len(offers) == agents
    median = benchmark.stats.stats.median
    benchmark.extra_info["offers_per_second"] = round(agents / median)


@pytest.mark.parametrize("agents,frameworks", [(1_000, 100)])
def test_declined_cycle(benchmark: BenchmarkFixture, agents: int, frameworks: int) -> None:
    benchmark.group = "allocator: cycle where every framework filters every agent"
    allocator = build(agents, frameworks)
    for _ in range(frameworks):
        for offer in allocator.allocate(0.0):
            allocator.recover(offer.framework_id, offer.agent_id, offer.resources, 1e9, 0.0)
    assert allocator.allocate(0.0) == []
    assert benchmark(allocator.allocate, 1.0) == []


def test_add_and_remove_agent_at_10k(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "allocator: add_agent + remove_agent, 10k agents x 1k frameworks"
    allocator = build(10_000, 1_000)
    allocator.allocate(0.0)

    def add_remove() -> None:
        allocator.add_agent("extra", AGENT)
        allocator.remove_agent("extra")

    benchmark(add_remove)


def test_remove_allocated_agent_at_10k(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "allocator: remove_agent of an allocated agent, 10k agents x 1k frameworks"
    allocator = build(10_000, 1_000)
    allocator.allocate(0.0)
    names = iter(f"agent-{index:06d}" for index in range(10_000))
    benchmark.pedantic(lambda: allocator.remove_agent(next(names)), rounds=2_000, iterations=1)


def test_recover_and_reallocate_one_agent_at_10k(benchmark: BenchmarkFixture) -> None:
    """The steady state: a task finishes, its agent is freed and re-offered next cycle."""
    benchmark.group = "allocator: recover one agent + cycle, 10k agents x 1k frameworks"
    allocator = build(10_000, 1_000)
    holder = {offer.agent_id: offer.framework_id for offer in allocator.allocate(0.0)}

    def cycle() -> None:
        allocator.recover(holder["agent-000042"], "agent-000042", AGENT)
        (offer,) = allocator.allocate(1.0)
        holder[offer.agent_id] = offer.framework_id

    benchmark(cycle)


@pytest.mark.parametrize("agents,frameworks", [(1_000, 100), (10_000, 1_000)])
def test_full_cycle_reserved_and_quota(
    benchmark: BenchmarkFixture, agents: int, frameworks: int
) -> None:
    """The slow paths: every agent also has resources reserved to one of the roles (offered
    first, to that role), and every role has a quota limit that binds mid-cycle (offers
    are shrunk to the headroom, then the role is skipped)."""
    benchmark.group = "allocator: one full cycle, reservations + quota"
    rounds = 10 if agents <= 1_000 else 3
    reserved = [
        AGENT + Resources.parse(f"cpus({role}):4;mem({role}):8192") for role in ROLES
    ]
    per_role_cpus = agents * 16 // (len(ROLES) + 1)

    def setup() -> tuple[tuple[Allocator], dict[str, object]]:
        allocator = build(0, frameworks)
        for role in ROLES:
            allocator.set_quota(role, Resources.parse(f"cpus:{per_role_cpus + 0.5}"))
        for index in range(agents):
            allocator.add_agent(f"agent-{index:06d}", reserved[index % len(ROLES)])
        return (allocator,), {}

    offers = benchmark.pedantic(
        lambda allocator: allocator.allocate(0.0), setup=setup, rounds=rounds, iterations=1
    )
    assert len(offers) >= agents
    benchmark.extra_info["offers_per_second"] = round(len(offers) / benchmark.stats.stats.median)
