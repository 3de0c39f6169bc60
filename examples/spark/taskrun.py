"""Running tasks on an executor: `ExecutorRuntime` takes the driver's messages (stage
blobs, broadcasts, task launches), runs tasks on `cores` worker threads, one task per
thread at a time, and hands each result to `send`. It knows nothing of sockets: the
executor process (`corral.examples.spark.executor`) and the in-process executors of
local mode (`corral.examples.spark.local`) both wrap it.

A task computes one partition of its stage's RDD: a map task buckets the records by
reduce partition and writes them to the `ShuffleStore`; a result task applies the
stage's function and returns the pickled value."""
from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from corral.examples.spark import serde
from corral.examples.spark.shared import BroadcastStore, set_current_task
from corral.examples.spark.shuffle import FetchFailed, ShuffleDependency, ShuffleStore
from corral.examples.spark.wire import Msg, Outcome

log = logging.getLogger(__name__)


@dataclass
class StageTask:
    """What every task of one stage runs: pickled once per stage, sent once per executor."""

    rdd: Any
    #: a map stage writes this shuffle; a result stage has None and a `func`
    dep: ShuffleDependency | None = None
    func: Callable[[int, Iterator[Any]], Any] | None = None


class BlockSource(Protocol):
    def batches(self, executor_id: str, address: str, shuffle_id: int, reduce_id: int, map_ids: list[int],
                counter: Any) -> Iterator[list[Any]]: ...


class TaskContext:
    """One task attempt as the RDDs it computes see it."""

    __slots__ = ("task_id", "split", "executor", "shuffle_inputs", "accumulators", "new_blocks",
                 "shuffle_read_bytes")

    def __init__(self, task_id: int, split: int, executor: "ExecutorRuntime",
                 shuffle_inputs: dict[int, list[tuple[str, str, list[int]]]] | None) -> None:
        self.task_id = task_id
        self.split = split
        self.executor = executor
        self.shuffle_inputs = shuffle_inputs or {}
        #: accumulator id -> this task's additions
        self.accumulators: dict[str, Any] = {}
        #: (rdd id, split) of the partitions this task cached
        self.new_blocks: list[tuple[int, int]] = []
        self.shuffle_read_bytes = 0

    def cached(self, rdd: Any, split: int) -> Iterator[Any]:
        """A persisted RDD's partition from this executor's memory, computed and kept
        there first if missing."""
        blocks = self.executor.blocks
        key = (rdd.id, split)
        data = blocks.get(key)
        if data is None:
            data = list(rdd.compute(split, self))
            blocks[key] = data
            self.new_blocks.append(key)
        return iter(data)

    def shuffle_batches(self, shuffle_id: int, reduce_id: int) -> Iterator[list[Any]]:
        """Every record batch of reduce partition `reduce_id` of the shuffle."""
        locations = self.shuffle_inputs.get(shuffle_id)
        if locations is None:
            raise FetchFailed(shuffle_id, -1, "", "the driver gave no locations for this shuffle's outputs")
        source = self.executor.blocks_source
        for executor_id, address, map_ids in locations:
            yield from source.batches(executor_id, address, shuffle_id, reduce_id, map_ids, self)


class ExecutorRuntime:
    """An executor's tasks, blocks, broadcasts and shuffle files."""

    def __init__(self, executor_id: str, work_dir: Path, cores: int, send: Callable[[list[tuple[Any, ...]]], None],
                 compress_shuffle: bool) -> None:
        self.executor_id = executor_id
        self.cores = max(1, cores)
        self.shuffles = ShuffleStore(Path(work_dir) / "shuffle", compress_shuffle)
        self.broadcasts = BroadcastStore()
        #: cached partitions: (rdd id, split) -> records
        self.blocks: dict[tuple[int, int], list[Any]] = {}
        #: where reduce tasks read shuffle blocks from (set by the wrapper)
        self.blocks_source: BlockSource
        self._send = send
        self._stages: dict[int, Any] = {}
        self._stage_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._killed: set[int] = set()
        self._workers: list[threading.Thread] = []
        self.stopped = threading.Event()

    def start(self) -> None:
        for i in range(self.cores):
            worker = threading.Thread(target=self._work, name=f"task-worker-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self.stopped.set()
        for _ in self._workers:
            self._queue.put(None)

    def handle(self, messages: list[tuple[Any, ...]]) -> None:
        """Messages from the driver (on the thread that receives them: never blocks)."""
        for msg in messages:
            kind = msg[0]
            if kind == Msg.LAUNCH:
                for desc in msg[1]:
                    self._queue.put(desc)
            elif kind == Msg.STAGE:
                with self._stage_lock:
                    self._stages[msg[1]] = msg[2]
            elif kind == Msg.FORGET_STAGE:
                with self._stage_lock:
                    self._stages.pop(msg[1], None)
            elif kind == Msg.BROADCAST:
                self.broadcasts.put(msg[1], msg[2])
            elif kind == Msg.DROP_BROADCAST:
                self.broadcasts.drop(msg[1])
            elif kind == Msg.KILL:
                self._killed.add(msg[1])
            elif kind == Msg.UNPERSIST:
                for key in [k for k in list(self.blocks) if k[0] == msg[1]]:
                    self.blocks.pop(key, None)
            elif kind == Msg.DROP_SHUFFLE:
                self.shuffles.drop(msg[1])
            elif kind == Msg.STOP:
                self.stop()
            elif kind != Msg.HEARTBEAT:
                log.warning("unknown message from the driver: %r", msg[:1])

    def _stage(self, blob_id: int) -> StageTask:
        with self._stage_lock:
            stage = self._stages[blob_id]
            if isinstance(stage, bytes):
                stage = self._stages[blob_id] = serde.loads(stage)
            return stage

    def _work(self) -> None:
        while True:
            desc = self._queue.get()
            if desc is None:
                return
            if desc[0] in self._killed:
                self._killed.discard(desc[0])
                self._send([(Msg.RESULTS, [(desc[0], Outcome.KILLED, None, (0.0, 0, 0))])])
                continue
            self._send([(Msg.RESULTS, [self.run(*desc)])])

    def run(self, task_id: int, blob_id: int, split: int, attempt: int,
            shuffle_inputs: dict[int, list[tuple[str, str, list[int]]]] | None) -> tuple[Any, ...]:
        """Run one task; its result message entry."""
        task = TaskContext(task_id, split, self, shuffle_inputs)
        started = time.perf_counter()
        written = 0
        set_current_task(task)
        try:
            stage = self._stage(blob_id)
            records = stage.rdd.iterator(split, task)
            if stage.dep is not None:
                sizes = self.shuffles.write(stage.dep.shuffle_id, split, stage.dep.bucket(records))
                written = sum(sizes)
                value: Any = sizes
            else:
                assert stage.func is not None
                value = serde.dumps(stage.func(split, records))
            outcome, payload = Outcome.SUCCESS, (value, task.accumulators, task.new_blocks)
        except FetchFailed as exc:
            outcome, payload = Outcome.FETCH_FAILED, (exc.shuffle_id, exc.map_id, exc.executor_id, str(exc))
        except Exception as exc:
            outcome, payload = Outcome.FAILED, _failure(exc)
        finally:
            set_current_task(None)
        return (task_id, outcome, payload, (time.perf_counter() - started, written, task.shuffle_read_bytes))


def _failure(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """(the pickled exception if it pickles, its type, message, formatted traceback)."""
    try:
        pickled: bytes | None = serde.dumps(exc)
        serde.loads(pickled)
    except Exception:
        pickled = None
    return pickled, type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))
