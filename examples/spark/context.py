"""`Context`: the entry point of a driver program (Spark's SparkContext).

    with Context("127.0.0.1:5050", app_name="wc", executors=2, executor_resources="cpus:1;mem:512") as ctx:
        counts = ctx.text_file("input/").flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add)

`master` is a corral master's `HOST:PORT`, or `local[N]` for N executors inside this
process. Everything the context is given is checked before anything starts (the
master's form, the resource string, the py_files); on a cluster the constructor returns
once every executor has registered, or stops what it started and raises
`ExecutorsUnavailable` saying why."""
from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import math
import operator
import os
import re
import secrets
import sys
import threading
import uuid
from typing import Any, Callable, Iterable, TextIO

import corral
from corral.examples.spark import serde
from corral.examples.spark.core import DriverCore, EngineConfig, ExecutorUp, ExecutorView
from corral.examples.spark.dag import Job, JobEnded
from corral.examples.spark.driver import ClusterBackend
from corral.examples.spark.local import LocalBackend
from corral.examples.spark.loop import DriverLoop
from corral.examples.spark.pool import PoolConfig, PoolGaveUp
from corral.examples.spark.progress import JobSummary, Progress
from corral.examples.spark.rdd import RDD, ParallelCollectionRDD, TextFileRDD, list_input_files, text_splits
from corral.examples.spark.shared import Accumulator, Broadcast, default_zero
from corral.examples.spark.wire import Msg

log = logging.getLogger(__name__)

_LOCAL = re.compile(r"local(?:\[(\d+)\])?")
_HOST_PORT = re.compile(r"[^\s:]+:\d{1,5}")


class ExecutorsUnavailable(RuntimeError):
    """The executors could not be started."""


class JobFailed(RuntimeError):
    """A job failed for a reason other than an exception of the user's code."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised on an executor (the `__cause__` of the
    exception the driver re-raises)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


class Context:
    """A driver program's connection to its executors; make RDDs with it, stop it when
    done (or use it as a context manager)."""

    def __init__(self, master: str = "local[2]", app_name: str = "corral-spark", executors: int = 2,
                 executor_resources: str = "cpus:1;mem:512", *, py_files: Iterable[str] = (),
                 speculation: bool = False, progress: bool | None = None, stream: TextIO | None = None,
                 max_task_failures: int = 4, locality_wait: float = 3.0, blacklist_seconds: float = 60.0,
                 startup_timeout: float = 60.0, compress_shuffle: bool = True, text_block_size: int = 32 << 20,
                 executor_environment: dict[str, str] | None = None, role: str | None = None,
                 engine: EngineConfig | None = None) -> None:
        """`engine` overrides the scheduler's settings wholesale (timeouts and the like);
        the keyword arguments above cover what programs usually set."""
        local = _LOCAL.fullmatch(master)
        if not local and not _HOST_PORT.fullmatch(master):
            raise ValueError(f"master must be HOST:PORT or local[N], not {master!r}")
        if not isinstance(executors, int) or executors < 1:
            raise ValueError(f"executors must be a positive integer, not {executors!r}")
        try:
            resources = corral.Resources.parse(executor_resources)
        except corral.ResourceError as exc:
            raise ValueError(f"executor_resources {executor_resources!r} does not parse: {exc}") from None
        cpus = sum(r.scalar.value for r in resources.to_protos() if r.name == "cpus")
        if not local and cpus <= 0:
            raise ValueError(f"executor_resources {executor_resources!r} must include cpus")
        py_files = [os.path.abspath(p) for p in py_files]
        for path in py_files:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"py_files: no such file: {path}")
        if max_task_failures < 1:
            raise ValueError(f"max_task_failures must be at least 1, not {max_task_failures}")

        self.master = master
        self.app_name = app_name
        self.app_id = f"{app_name}-{uuid.uuid4().hex[:8]}"
        self.text_block_size = text_block_size
        self._ids = itertools.count(1)
        self._rdd_ids = itertools.count(1)
        self._shuffle_ids = itertools.count(1)
        self._broadcasts: dict[str, Broadcast] = {}
        self._accumulators: dict[str, Accumulator] = {}
        self._waiters: dict[int, threading.Event] = {}
        self._registered = threading.Condition()
        self._executors_up = 0
        self._gave_up: str | None = None
        self._stopped = False
        #: what each finished job did (the last one is `last_job`)
        self.job_summaries: list[JobSummary] = []
        self.progress = Progress(stream or sys.stderr, progress)

        config = dataclasses.replace(engine) if engine else EngineConfig(
            max_task_failures=max_task_failures, locality_wait=locality_wait, speculation=speculation)
        if local:
            count = int(local.group(1) or executors)
            self.executors_wanted, cores = count, 1
            config.executor_timeout = config.heartbeat_interval = math.inf
            self._backend: Any = LocalBackend(count, compress_shuffle, self._on_action)
            core = DriverCore(config, self._broadcast_blob, self._merge_accumulators)
        else:
            self.executors_wanted, cores = executors, max(1, int(cpus))
            settings = {"compress_shuffle": compress_shuffle, "heartbeat_interval": config.heartbeat_interval,
                        "driver_timeout": config.executor_timeout, "py_files": [os.path.basename(p) for p in py_files]}
            environment = {"PYTHONHASHSEED": str(secrets.randbelow(1 << 31)), **(executor_environment or {})}
            uris = [corral.uri(p, extract=False) for p in py_files]
            self._backend = ClusterBackend(master, app_name, secrets.token_hex(16), resources, cores, settings,
                                           environment, uris, self._on_action, role)
            pool = PoolConfig(executors, resources, blacklist_seconds=blacklist_seconds)
            core = DriverCore(config, self._broadcast_blob, self._merge_accumulators, pool,
                              self._backend.make_executor_task, f"{app_name}-{uuid.uuid4().hex[:6]}")
        self.default_parallelism = self.executors_wanted * cores
        self._core = core
        self._loop = DriverLoop(core, self._backend.perform)
        self._loop.start()
        try:
            self._backend.start(self._loop)
            self._wait_for_executors(startup_timeout)
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)

    # ------------------------------------------------------------------- set-up
    def _wait_for_executors(self, timeout: float) -> None:
        with self._registered:
            self._registered.wait_for(lambda: self._gave_up or self._executors_up >= self.executors_wanted, timeout)
            up = self._executors_up
        if self._gave_up:
            raise ExecutorsUnavailable(f"the executors could not start: {self._gave_up}")
        if up < self.executors_wanted:
            pool = self._core.pool
            detail = ""
            if pool is not None:
                detail = f"; {pool.offers_seen} offer(s) seen"
                if pool.last_unfit_offer:
                    detail += f", the last that could not hold one: {pool.last_unfit_offer}"
                if pool.recent_ends:
                    detail += f"; executors ended: {'; '.join(pool.recent_ends)}"
            raise ExecutorsUnavailable(f"only {up} of {self.executors_wanted} executor(s) registered within "
                                       f"{timeout:g}s{detail}")

    def _on_action(self, action: Any) -> None:
        """Actions of the core that concern the program (on the loop thread)."""
        if isinstance(action, JobEnded):
            waiter = self._waiters.pop(action.job.id, None)
            if waiter is not None:
                waiter.set()
        elif isinstance(action, ExecutorUp):
            with self._registered:
                self._executors_up += 1
                self._registered.notify_all()
        elif isinstance(action, PoolGaveUp):
            with self._registered:
                self._gave_up = action.message
                self._registered.notify_all()

    # ------------------------------------------------------------------ plumbing
    def _new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    def _broadcast_blob(self, broadcast_id: str) -> bytes:
        return self._broadcasts[broadcast_id].blob

    def _merge_accumulators(self, updates: dict[str, Any]) -> None:
        for accumulator_id, update in updates.items():
            accumulator = self._accumulators.get(accumulator_id)
            if accumulator is not None:
                accumulator.merge(update)

    def _unpersist(self, rdd_id: int) -> None:
        if not self._stopped:
            self._loop.post(self._forget_cached, rdd_id)

    def _drop_shuffle(self, shuffle_id: int) -> None:
        """A ShuffledRDD was garbage-collected: its map outputs are of no more use."""
        if not self._stopped:
            self._loop.post(self._core.drop_shuffle, shuffle_id)

    def _forget_cached(self, rdd_id: int, now: float) -> None:
        for key in [k for k in self._core.dag.cache_locs if k[0] == rdd_id]:
            del self._core.dag.cache_locs[key]
        self._core.tell_executors((int(Msg.UNPERSIST), rdd_id))

    def _drop_broadcast(self, broadcast_id: str) -> None:
        self._loop.post(self._forget_broadcast, broadcast_id)

    def _forget_broadcast(self, broadcast_id: str, now: float) -> None:
        for executor in self._core.executors.values():
            executor.broadcasts.discard(broadcast_id)
        self._core.tell_executors((int(Msg.DROP_BROADCAST), broadcast_id))

    def __reduce__(self) -> Any:
        raise TypeError("a Context cannot be sent to the executors: a function given to an RDD operation refers to it "
                        "(use it in the driver program only)")

    # ------------------------------------------------------------------- datasets
    def parallelize(self, data: Iterable[Any], partitions: int | None = None) -> RDD:
        rdd = ParallelCollectionRDD(self, data, partitions or self.default_parallelism)
        serde.dumps_function(rdd.slices, f"the data given to parallelize at {rdd.callsite}")
        return rdd

    def text_file(self, path: str | os.PathLike[str] | Iterable[str], min_partitions: int | None = None) -> RDD:
        """Lines of a file, a directory's files, or a glob (FileNotFoundError now if
        nothing matches); split in byte ranges of at most `text_block_size`."""
        files = list_input_files(path)
        splits = text_splits(files, min_partitions or self.default_parallelism, self.text_block_size,
                             self.default_parallelism)
        return TextFileRDD(self, splits, "text_file")

    def union(self, rdds: list[RDD]) -> RDD:
        if not rdds:
            raise ValueError("union of no RDDs")
        result = rdds[0]
        for rdd in rdds[1:]:
            result = result.union(rdd)
        return result

    def broadcast(self, value: Any) -> Broadcast:
        broadcast_id = f"{self.app_id}/b{next(self._ids)}"
        blob = serde.dumps_function(value, "the broadcast value")
        broadcast = Broadcast(broadcast_id, value, blob, self._drop_broadcast)
        self._broadcasts[broadcast_id] = broadcast
        return broadcast

    def accumulator(self, value: Any, add: Callable[[Any, Any], Any] = operator.add, zero: Any = None) -> Accumulator:
        """Tasks `add` to it; `value` on the driver is the total. `zero` (by default the
        zero of value's type) starts each task's share."""
        accumulator_id = f"{self.app_id}/a{next(self._ids)}"
        accumulator = Accumulator(accumulator_id, value, add, default_zero(value) if zero is None else zero)
        serde.dumps_function(accumulator, "the accumulator's add function")
        self._accumulators[accumulator_id] = accumulator
        return accumulator

    # ------------------------------------------------------------------------ jobs
    def run_job(self, rdd: RDD, func: Callable[[int, Any], Any], splits: list[int] | None = None,
                description: str = "") -> list[Any]:
        """Run func(split, records) on each partition of `rdd` (all, or `splits`); the
        results in partition order. Raises the user's exception if a task keeps failing."""
        if self._stopped:
            raise RuntimeError("the context is stopped")
        if rdd.ctx is not self:
            raise ValueError("the RDD belongs to another context")
        splits = list(range(rdd.num_partitions)) if splits is None else list(splits)
        job = Job(next(self._ids), rdd, func, splits, description or rdd.name)
        done = threading.Event()
        self._waiters[job.id] = done
        self._loop.post(self._core.submit_job, job)
        try:
            self.progress.follow(job, done)
        except KeyboardInterrupt:
            self._loop.post(self._core.cancel_job, job, "cancelled (KeyboardInterrupt)")
            raise
        self.job_summaries.append(JobSummary.of(job))
        if job.error is not None:
            raise _job_exception(job)
        return [serde.loads(value) for value in job.results]

    @property
    def last_job(self) -> JobSummary | None:
        return self.job_summaries[-1] if self.job_summaries else None

    def executor_pids(self) -> dict[str, int]:
        """Executor id -> process id, of the executors registered now."""
        return {view.id: view.pid for view in self.executor_status()}

    def executor_status(self) -> list[ExecutorView]:
        """The executors registered now: where they run and what they hold."""
        return self._loop.call(lambda now: self._core.executor_views())

    # --------------------------------------------------------------------- the end
    def stop(self) -> None:
        """Stop the executors and the driver; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._loop.call(self._core.stop, timeout=10)
        except Exception:
            log.exception("stopping the driver core failed")
        self._backend.stop()
        self._loop.stop()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _job_exception(job: Job) -> BaseException:
    error = job.error
    assert error is not None
    failure = error.failure
    if failure is None:
        return JobFailed(f"job {job.id} ({job.description}) failed: {error.message}")
    exc: BaseException | None = None
    if failure.pickled is not None:
        try:
            exc = serde.loads(failure.pickled)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = JobFailed(f"{failure.type_name}: {failure.message}")
    exc.add_note(f"(raised on an executor; job {job.id} ({job.description}) failed: {error.message})")
    exc.__cause__ = RemoteTraceback(failure.traceback)
    return exc
