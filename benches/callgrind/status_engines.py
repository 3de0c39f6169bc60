"""Instruction counts per acknowledged update through the four engines, for comparing
builds on a loaded box: `bench_status_engines.py`'s round (3 updates for each of 3 000
tasks, every message serialised and parsed), after one warm-up round.

  valgrind --tool=callgrind python benches/callgrind/status_engines.py SRC batched 1
  valgrind --tool=callgrind python benches/callgrind/status_engines.py SRC batched 3

(count(3) - count(1)) / (2 x 9 000) is the instructions per update. SRC is the checkout
whose benches/ to use (the installed corral is the build measured).
"""
from __future__ import annotations

import gc
import importlib.util
import sys

from corral.protos import corral_pb2 as pb

TASKS = 3_000


def main() -> None:
    src, mode, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = importlib.util.spec_from_file_location("bench", f"{src}/benches/bench_status_engines.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.TASKS = TASKS
    wire = bench.Wire()
    executor = wire.set_up()
    for engine in wire.engines.values():
        engine.batch = mode == "batched"
    statuses = []
    for i in range(TASKS):
        status = pb.TaskStatus(state=pb.TASK_RUNNING)
        status.task_id.value = f"t{i}"
        statuses.append(status)
    now = 4.0
    gc.set_threshold(bench.GC_YOUNG_THRESHOLD, 10, 10)
    for _ in range(1 + rounds):
        now += 1.0
        for _ in range(bench.UPDATES_PER_TASK):
            for status in statuses:
                executor.send_status_update(bench.serialise_status(status), now)
        wire.run(now)
    assert executor.unacknowledged() == 0


if __name__ == "__main__":
    main()
