"""The master's /state with 100 000 tasks, served over HTTP (issue 24: at most 1 s).

A real `MasterDaemon` (HTTP server, runtime, registry) whose engine holds 100k RUNNING
tasks put there through the protocol (`cluster_state.build_master`: 100 agents x 1000
tasks, each with the status that made it RUNNING in its history), started, and asked
for /state by an HTTP client in this process: timed from the request to the last byte
of the answer. Also reported: the views alone (under the runtime lock), their encoding
alone (orjson), and the encoding the daemons used before (the standard library's json
with sorted keys and indentation), same run.

Run: python -m pytest benches/bench_state.py --benchmark-only -s
"""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from cluster_state import build_master
from corral.engines.master import MasterConfig
from corral.master.daemon import MasterDaemon, MasterFlags

N_TASKS = 100_000
TARGET_S = 1.0


@pytest.mark.timeout(600)
def test_state_of_100k_tasks_over_http(benchmark, tmp_path: Path) -> None:
    daemon = MasterDaemon(MasterFlags(work_dir=tmp_path, port=0, transport_port=0),
                          MasterConfig(ping_interval=1e9, allocation_interval=3600.0))
    build_master(N_TASKS, master=daemon.engine)
    daemon.start()
    try:
        url = f"http://{daemon.address}/state"
        sizes = []

        def fetch() -> None:
            with urllib.request.urlopen(url, timeout=60) as response:
                sizes.append(len(response.read()))

        benchmark.pedantic(fetch, rounds=5, warmup_rounds=1)
        view_s, orjson_s, stdlib_s = [], [], []
        for _ in range(3):
            started = time.perf_counter()
            view = daemon.state()
            view_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            orjson.dumps(view)
            orjson_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            json.dumps(view, indent=1, sort_keys=True)
            stdlib_s.append(time.perf_counter() - started)
        tasks = len(daemon.state()["frameworks"][0]["tasks"])
    finally:
        daemon.stop()
    assert tasks == N_TASKS
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(tasks=N_TASKS, bytes=sizes[-1], median_s=median, target_s=TARGET_S,
                                view_s=min(view_s), orjson_s=min(orjson_s), stdlib_json_s=min(stdlib_s))
    print(f"\n/state of {N_TASKS} tasks over HTTP: median {median:.3f} s ({median / TARGET_S:.2f} of the 1 s target), "
          f"{sizes[-1] / 1e6:.1f} MB; views {min(view_s):.3f} s, orjson {min(orjson_s):.3f} s "
          f"(the standard library's json, indented and sorted, as before: {min(stdlib_s):.3f} s)")
