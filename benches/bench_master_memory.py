"""Master memory: 100k active tasks held by the master engine (issue 3: <= 200 MB of
extra resident memory).

Measured in a fresh child process (spawned, so nothing else this run allocated is in
it): RSS (`/proc/self/statm`) after importing corral and building an empty master,
then again after `cluster_state.build_master(100_000)` put 100k RUNNING tasks in it
through the protocol (100 agents x 1000 tasks, every TaskInfo and last status parsed
from the wire), with the builder's temporary messages freed and a full `gc.collect()`;
and once more after `malloc_trim(0)` (freed heap pages handed back to the kernel).
The same child also reports tracemalloc's count of bytes still allocated by Python
(a second run, since tracing slows the build and adds its own overhead).

Run: python -m pytest benches/bench_master_memory.py --benchmark-only -s
"""
from __future__ import annotations

import gc
import multiprocessing
import os

N_TASKS = 100_000
TARGET_MB = 200


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(n: int, trace: bool, conn) -> None:
    import tracemalloc

    from cluster_state import build_master, new_master

    warm = new_master()  # imports done, protobuf and the engine classes loaded
    del warm
    gc.collect()
    if trace:
        tracemalloc.start()
    before = _rss_bytes()
    traced_before = tracemalloc.get_traced_memory()[0] if trace else 0
    master, fid, _tasks = build_master(n)
    del _tasks
    gc.collect()
    after = _rss_bytes()
    # the same after glibc hands freed heap pages back (what the builder's temporary
    # messages left behind, freed but still resident, is then not counted)
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    trimmed = _rss_bytes()
    traced = (tracemalloc.get_traced_memory()[0] - traced_before) if trace else 0
    assert len(master.frameworks[fid].tasks) == n
    conn.send({"rss_before": before, "rss_after": after, "rss_trimmed": trimmed, "traced": traced})


def measure(n: int, trace: bool = False) -> dict:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_measure, args=(n, trace, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def test_master_memory_100k_tasks(benchmark):
    results = {}

    def once():
        results.update(measure(N_TASKS))

    benchmark.pedantic(once, rounds=1, iterations=1)
    extra_mb = (results["rss_after"] - results["rss_before"]) / 2**20
    trimmed_mb = (results["rss_trimmed"] - results["rss_before"]) / 2**20
    traced = measure(N_TASKS, trace=True)["traced"] / 2**20
    benchmark.extra_info.update(tasks=N_TASKS, rss_extra_mb=round(extra_mb, 1), rss_trimmed_mb=round(trimmed_mb, 1),
                                tracemalloc_mb=round(traced, 1), target_mb=TARGET_MB,
                                bytes_per_task=round(extra_mb * 2**20 / N_TASKS))
    print(f"\nmaster with {N_TASKS} tasks: RSS +{extra_mb:.1f} MiB ({extra_mb * 2**20 / N_TASKS:.0f} B/task), "
          f"after malloc_trim +{trimmed_mb:.1f} MiB, tracemalloc {traced:.1f} MiB; target {TARGET_MB} MB")
