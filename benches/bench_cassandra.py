"""The Cassandra-like store and its framework (issue 22).

- `test_store_quorum_writes` / `test_store_quorum_reads`: three node processes on
  loopback (RF 3, commit log fsynced per loop iteration), one pipelined client (256
  requests in flight, token-aware, rotating coordinators), 100-byte values. Each
  round writes (reads) 20 000 keys; figures: requests per second, and each request's
  latency from its send to its answer, p50 and p99. Target: 5 000/s each.
- `test_framework_deploy_and_kill_to_serving`: a corral local cluster of 4 agents and
  the scheduler as real processes. Timed: from the scheduler's start to the deploy
  plan COMPLETE (3 nodes, every node seeing every node UN); then from SIGKILL of
  node-1's process until it answers a read again (as coordinator and replica: a ONE
  read sent to it alone). Target: at most 10 s.
- `test_framework_replace_100mb`: each node holds 100 MB (100 000 keys of 1 KiB at
  RF 3 on 3 nodes); `pod replace node-2` until the deploy plan is COMPLETE again (the
  new node streamed its ranges from the two live replicas and is UN everywhere).

Run: python -m pytest benches/bench_cassandra.py --benchmark-only -s
"""
from __future__ import annotations

import os
import signal
import statistics
import time

import pytest

from corral.examples.cassandra.client import Client, StoreError
from corral.examples.cassandra.testing import LocalRing, LocalService
from corral.testing.cluster import wait_for

KEYS = 20_000
VALUE = b"x" * 100
#: the framework benches run the nodes with the scheduler's defaults (gossip every 0.5 s,
#: ring delay 3 s), not the faster settings the tests use
DEFAULT_NODE_SETTINGS = ["--node-gossip-interval", "0.5", "--node-ring-delay", "3", "--num-tokens", "16"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    with LocalRing(tmp_path_factory.mktemp("bench-ring"), 3, gossip_interval=0.5) as r:
        yield r


def _report(benchmark, what: str, latencies: list[float]) -> None:
    rate = KEYS / benchmark.stats.stats.median
    p50, p99 = percentile(latencies, 0.50) * 1e3, percentile(latencies, 0.99) * 1e3
    benchmark.extra_info.update({f"{what}_per_s": round(rate), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2)})
    print(f"\n{what}: {rate:,.0f}/s at QUORUM (median round), latency p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def test_store_quorum_writes(benchmark, ring):
    client = ring.client()
    latencies: list[float] = []
    rounds = iter(range(1000))

    def once():
        latencies.clear()
        r = next(rounds)
        errors = client.put_many([(b"k%d-%d" % (r % 2, i), VALUE) for i in range(KEYS)], latencies=latencies)
        assert errors == [None] * KEYS

    benchmark.pedantic(once, rounds=5, warmup_rounds=1)
    _report(benchmark, "writes", latencies)
    client.close()


def test_store_quorum_reads(benchmark, ring):
    client = ring.client()
    keys = [b"k0-%d" % i for i in range(KEYS)]
    assert client.put_many([(k, VALUE) for k in keys]) == [None] * KEYS
    latencies: list[float] = []

    def once():
        latencies.clear()
        values = client.get_many(keys, latencies=latencies)
        assert values == [VALUE] * KEYS

    benchmark.pedantic(once, rounds=5, warmup_rounds=1)
    _report(benchmark, "reads", latencies)
    client.close()


def test_framework_deploy_and_kill_to_serving(benchmark, tmp_path):
    figures = {}

    def once():
        service = LocalService(tmp_path / f"svc-{len(figures)}", scheduler_flags=DEFAULT_NODE_SETTINGS)
        service.cluster.start()
        for i in range(service.agent_count):
            service.add_agent(i)
        service.cluster.wait_agents(service.agent_count)
        try:
            started = time.monotonic()
            service.start_scheduler()
            service.wait_plan("deploy", timeout=120)
            figures["deploy_s"] = time.monotonic() - started
            pod = service.pod("node-1")
            address = pod["address"]
            with Client(service.endpoints()) as client:
                client.put(b"probe", b"value", consistency="ALL")
            killed = time.monotonic()
            os.kill(pod["pid"], signal.SIGKILL)

            def serving() -> bool:
                try:
                    with Client([address], token_aware=False, connect_timeout=0.3, request_timeout=0.5,
                                attempts=1) as one:
                        return one.get(b"probe", consistency="ONE") == b"value"
                except StoreError:
                    return False
            wait_for(serving, 60, "node-1 serving again", interval=0.02)
            figures["kill_to_serving_s"] = time.monotonic() - killed
            service.wait_plan("deploy", timeout=60)
            figures["kill_to_up_everywhere_s"] = time.monotonic() - killed
        finally:
            service.stop()

    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 2) for k, v in figures.items()})
    print(f"\ndeploy of 3 nodes: {figures['deploy_s']:.1f} s; SIGKILL of a node to serving again: "
          f"{figures['kill_to_serving_s']:.2f} s (UN in every node's view: {figures['kill_to_up_everywhere_s']:.2f} s)")


def test_framework_replace_100mb(benchmark, tmp_path):
    service = LocalService(tmp_path, node_resources="cpus:0.5;mem:512;disk:1024",
                           agent_resources="cpus:2;mem:2048;disk:4096", scheduler_flags=DEFAULT_NODE_SETTINGS)
    figures = {}
    with service:
        service.wait_plan("deploy", timeout=120)
        payload = b"y" * 1024
        keys = [b"big-%06d" % i for i in range(100_000)]
        with Client(service.endpoints()) as client:
            for start in range(0, len(keys), 10_000):
                chunk = keys[start:start + 10_000]
                assert client.put_many([(k, payload) for k in chunk]) == [None] * len(chunk)

        def once():
            old = service.pod("node-2")
            started = time.monotonic()
            assert service.request("POST", "/v1/pod/node-2/replace")["pod"] == "node-2"
            wait_for(lambda: service.pod("node-2")["task_state"] == "TASK_RUNNING"
                     and service.pod("node-2")["task_id"] != old["task_id"], 60, "the replacement running")
            running = time.monotonic()
            service.wait_plan("deploy", timeout=300)
            done = time.monotonic()
            figures.update(replace_s=done - started, launch_s=running - started, join_s=done - running)

        benchmark.pedantic(once, rounds=1, iterations=1)
        with Client(service.endpoints()) as client:
            sample = keys[::97]
            values = client.get_many(sample, consistency="ALL")
            wrong = {str(v)[:160] for v in values if v != payload}
            assert not wrong, (wrong, client.ring_info)
        streamed = sorted(line for path in service.root.glob("cluster/agent-*/**/stderr")
                          for line in path.read_text(errors="replace").splitlines() if "streamed" in line)
    mb = len(keys) * (len(payload) + 10) / 1e6
    benchmark.extra_info.update({k: round(v, 2) for k, v in figures.items()})
    benchmark.extra_info["node_log"] = streamed[-1:]
    print(f"\nreplace of a node holding {mb:.0f} MB: {figures['replace_s']:.1f} s (placed and running in "
          f"{figures['launch_s']:.1f} s, then joined and UN everywhere in {figures['join_s']:.1f} s); "
          f"the new node: {streamed[-1].split(' INFO ')[-1] if streamed else '(no streaming line found)'}")
