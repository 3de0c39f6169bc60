"""Local mode (`Context("local[N]")`): N executors inside the driver's process, each an
`ExecutorRuntime` with one task thread, shuffle files in a temporary directory. The same
driver core, stage pickling and shuffle code run as on a cluster; only the links are
direct calls. For unit tests and quick experiments."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from corral.examples.spark.core import CloseLink, SendToExecutor
from corral.examples.spark.loop import DriverLoop
from corral.examples.spark.shuffle import FetchFailed, ShuffleStore
from corral.examples.spark.taskrun import ExecutorRuntime


class LocalBlocks:
    """Reduce tasks read every in-process executor's store directly."""

    def __init__(self, stores: dict[str, ShuffleStore]) -> None:
        self.stores = stores

    def batches(self, executor_id: str, address: str, shuffle_id: int, reduce_id: int, map_ids: list[int],
                counter: Any) -> Iterator[list[Any]]:
        store = self.stores.get(executor_id)
        for map_id in map_ids:
            if store is None:
                raise FetchFailed(shuffle_id, map_id, executor_id, "no such executor")
            try:
                yield from store.read_local(shuffle_id, map_id, reduce_id, counter)
            except (KeyError, OSError, EOFError) as exc:
                raise FetchFailed(shuffle_id, map_id, executor_id, f"{type(exc).__name__}: {exc}") from exc


class LocalBackend:
    def __init__(self, executors: int, compress_shuffle: bool, on_action: Callable[[Any], None]) -> None:
        self.count = executors
        self._compress = compress_shuffle
        self._on_action = on_action
        self.work_dir = Path(tempfile.mkdtemp(prefix="corral-spark-local-"))
        self.runtimes: dict[str, ExecutorRuntime] = {}
        self.loop: DriverLoop

    def start(self, loop: DriverLoop) -> None:
        self.loop = loop
        stores: dict[str, ShuffleStore] = {}
        for i in range(self.count):
            executor_id = f"local-{i}"
            runtime = ExecutorRuntime(executor_id, self.work_dir / executor_id, 1,
                                      lambda messages, e=executor_id: loop.post(loop.core.executor_message, e, messages),
                                      self._compress)
            stores[executor_id] = runtime.shuffles
            runtime.blocks_source = LocalBlocks(stores)
            self.runtimes[executor_id] = runtime
            runtime.start()
        for executor_id in self.runtimes:
            loop.call(loop.core.executor_registered, executor_id, "local", 1, os.getpid())

    def perform(self, action: Any) -> None:
        if isinstance(action, SendToExecutor):
            runtime = self.runtimes.get(action.executor_id)
            if runtime is not None:
                runtime.handle(action.messages)
        elif isinstance(action, CloseLink):
            runtime = self.runtimes.pop(action.executor_id, None)
            if runtime is not None:
                runtime.stop()
        else:
            self._on_action(action)

    def stop(self) -> None:
        for runtime in self.runtimes.values():
            runtime.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)
