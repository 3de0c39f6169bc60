"""Acknowledged status updates end to end with CurveZMQ on every link, against the same
path in plaintext, measured in the same run (issue 25: at least 0.6x the plaintext
figure, batched and unbatched).

The cluster of `bench_status_updates` (executor, agent, master and scheduler engines,
each in a process of its own, over tcp loopback) is set up twice per alternation: in
plaintext, then with every link encrypted and authenticated (each role a key pair, each
server admitting only its peers' keys, the principal checked on every frame, as the
daemons run it). The two runs alternate CURVE_ALTERNATIONS times (default 3) so that a
change in the machine's load shows in both; each run's figure is the median of 3 timed
rounds of 30 000 updates after a warm-up (`run_rounds`), with the CPU each process
spent per update.

Run: python -m pytest benches/bench_status_curve.py --benchmark-only -s
"""
from __future__ import annotations

import os

import pytest

from bench_status_updates import TASKS, UPDATES_PER_TASK, curve_keys, run_rounds

ALTERNATIONS = int(os.environ.get("CURVE_ALTERNATIONS", "3"))


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("batch", [False, True], ids=["unbatched", "batched"])
def test_status_updates_curve_vs_plaintext(benchmark, batch):
    total = TASKS * UPDATES_PER_TASK
    figures: dict[str, list[float]] = {"plaintext": [], "curve": []}
    cpu: dict[str, list[dict[str, float]]] = {"plaintext": [], "curve": []}
    busy: list[float] = []

    def alternate() -> None:
        for _ in range(ALTERNATIONS):
            for name, keys in (("plaintext", None), ("curve", curve_keys())):
                median, per_update, box, _metrics = run_rounds("4proc", batch, "engines", keys=keys)
                figures[name].append(total / median)
                cpu[name].append(per_update)
                busy.append(box)

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    ratios = [c / p for p, c in zip(figures["plaintext"], figures["curve"])]
    benchmark.extra_info.update(updates_per_s=figures, cpu_us_per_update=cpu, box_busy=[round(b, 2) for b in busy],
                                curve_over_plaintext=[round(r, 3) for r in ratios])
    print(f"\nbatch={batch}: plaintext {[round(f) for f in figures['plaintext']]} updates/s, "
          f"curve {[round(f) for f in figures['curve']]} updates/s, curve/plaintext {[round(r, 2) for r in ratios]} "
          f"(median {sorted(ratios)[len(ratios) // 2]:.2f}); box busy {[round(b, 2) for b in busy]}")
    for name in ("plaintext", "curve"):
        print(f"  CPU us per update, {name}: {cpu[name]}")
