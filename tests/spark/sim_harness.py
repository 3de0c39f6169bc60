"""The Spark-like driver's scheduling logic in corral's simulator.

`SimSpark` is a corral `Scheduler` around the real `DriverCore` (offers, executor pool,
DAG and task scheduling), run by a `SimCluster` with a fake clock. Its executors are
`SimSparkExecutor`s (custom corral executors in the simulator) that run each task for
real, in the test's process, on the real `ExecutorRuntime` (so results can be checked),
but report it done only after a simulated duration. The data path between the driver
and the executors is simulated with a fixed latency; a crashed executor's link drops.

`SimSpark` also stands in for the `Context` of the RDDs a test builds, so `collect()`
and the other actions run the simulation until their job ends."""
from __future__ import annotations

import itertools
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import corral
from corral.examples.spark import serde
from corral.examples.spark.core import CloseLink, DriverCore, EngineConfig, SendToExecutor
from corral.examples.spark.dag import Job, JobEnded
from corral.examples.spark.local import LocalBlocks
from corral.examples.spark.pool import (
    DeclineOffer, KillExecutor, LaunchExecutors, PoolConfig, ReviveOffers, SuppressOffers,
)
from corral.examples.spark.rdd import ParallelCollectionRDD, RDD
from corral.examples.spark.shuffle import ShuffleStore
from corral.examples.spark.taskrun import ExecutorRuntime
from corral.examples.spark.wire import Msg
from corral.testing import SimCluster

LATENCY = 0.001


@dataclass
class Record:
    """What the driver did, for assertions."""

    launches: list[tuple[float, str, str]] = field(default_factory=list)  # (time, executor id, agent id)
    declines: list[tuple[float, str, float]] = field(default_factory=list)  # (time, agent id, refuse seconds)
    suppressed: list[float] = field(default_factory=list)
    revived: list[float] = field(default_factory=list)
    #: (time, task id, executor id, blob id, split)
    tasks: list[tuple[float, int, str, int, int]] = field(default_factory=list)


class SimSpark(corral.Scheduler):
    def __init__(self, cluster: SimCluster, executors: int, resources: str = "cpus:1;mem:512",
                 config: EngineConfig | None = None, pool: PoolConfig | None = None,
                 task_seconds: Callable[[str, tuple[Any, ...]], float] = lambda executor, task: 1.0) -> None:
        self.cluster = cluster
        self.config = config or EngineConfig()
        pool = pool or PoolConfig(executors, corral.Resources.parse(resources))
        self.core = DriverCore(self.config, self._broadcast_blob, lambda updates: None, pool, self._make_task, "exec")
        self.task_seconds = task_seconds
        self.record = Record()
        self.links: dict[str, SimSparkExecutor] = {}
        self.stores: dict[str, ShuffleStore] = {}
        self.blocks = LocalBlocks(self.stores)
        self.work_dir = Path(tempfile.mkdtemp(prefix="spark-sim-"))
        self.default_parallelism = executors
        self._rdd_ids = itertools.count(1)
        self._shuffle_ids = itertools.count(1)
        self._job_ids = itertools.count(1)
        self._tick_at = math.inf
        self.driver: Any = None
        self.ended: list[Job] = []

    def start(self) -> "SimSpark":
        self.cluster.executor_factory = lambda launch: SimSparkExecutor(self)
        self.driver = self.cluster.add_scheduler(self, corral.FrameworkInfo(user="sim", name="spark"))
        return self

    # -- the corral side ---------------------------------------------------------------
    def _make_task(self, executor_id: str, offer: corral.Offer) -> corral.TaskInfo:
        info = corral.executor_info(executor_id, ["spark-executor"])
        return corral.executor_task(executor_id, info, offer.agent_id, self.core.pool.config.resources,
                                    task_id=executor_id, data=corral.pack({"executor_id": executor_id}))

    def resource_offers(self, driver, offers):
        self._run(self.core.offers, list(offers))

    def status_update(self, driver, status):
        self._run(self.core.executor_status, status)

    def agent_lost(self, driver, agent_id):
        self._run(self.core.agent_lost, agent_id.value)

    # -- running the core ----------------------------------------------------------------
    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        now = self.cluster.clock.now
        result = fn(*args, now)
        self._perform()
        return result

    def _perform(self) -> None:
        now = self.cluster.clock.now
        for action in self.core.take_actions():
            if isinstance(action, SendToExecutor):
                executor = self.links.get(action.executor_id)
                if executor is not None:
                    for msg in action.messages:
                        if msg[0] == Msg.LAUNCH:
                            self.record.tasks += [(now, t[0], action.executor_id, t[1], t[2]) for t in msg[1]]
                    executor.deliver(action.messages)
            elif isinstance(action, CloseLink):
                self.links.pop(action.executor_id, None)
            elif isinstance(action, LaunchExecutors):
                self.record.launches += [(now, t.task_id.value, t.agent_id.value) for t in action.tasks]
                self.driver.launch_tasks(action.offer_id, action.tasks)
            elif isinstance(action, DeclineOffer):
                self.record.declines.append((now, action.agent_id, action.refuse_seconds))
                self.driver.decline_offer(action.offer_id, corral.Filters(refuse_seconds=action.refuse_seconds))
            elif isinstance(action, SuppressOffers):
                self.record.suppressed.append(now)
                self.driver.suppress_offers()
            elif isinstance(action, ReviveOffers):
                self.record.revived.append(now)
                self.driver.revive_offers()
            elif isinstance(action, KillExecutor):
                self.driver.kill_task(corral.TaskID(value=action.executor_id))
            elif isinstance(action, JobEnded):
                self.ended.append(action.job)
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._tick_at:
            self._tick_at = deadline
            self.driver.call_later(max(0.0, deadline - now), self._tick)

    def _tick(self) -> None:
        self._tick_at = math.inf
        self._run(self.core.tick)

    # -- the data path ---------------------------------------------------------------------
    def link_up(self, executor: "SimSparkExecutor") -> None:
        def registered() -> None:
            self.links[executor.id] = executor
            self.stores[executor.id] = executor.runtime.shuffles
            if not self._run(self.core.executor_registered, executor.id, executor.id, 1, 0):
                self.links.pop(executor.id, None)

        self.driver.call_later(LATENCY, registered)

    def from_executor(self, executor_id: str, messages: list[tuple[Any, ...]]) -> None:
        self.driver.call_later(LATENCY, lambda: self._run(self.core.executor_message, executor_id, messages))

    def link_down(self, executor_id: str) -> None:
        self.stores.pop(executor_id, None)
        self.driver.call_later(LATENCY, lambda: self._run(self.core.executor_disconnected, executor_id))

    def crash(self, executor_id: str) -> None:
        """SIGKILL an executor's process: its link drops with it."""
        executor = self.links[executor_id]
        self.cluster.crash_executor(executor.driver)
        self.link_down(executor_id)

    # -- a Context for RDDs -------------------------------------------------------------------
    def _new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    def _drop_shuffle(self, shuffle_id: int) -> None:
        self.cluster.schedule(0.0, lambda: self._run(self.core.drop_shuffle, shuffle_id))

    def _unpersist(self, rdd_id: int) -> None:
        pass

    def _broadcast_blob(self, broadcast_id: str) -> bytes:
        raise KeyError(broadcast_id)

    def parallelize(self, data: Any, partitions: int) -> RDD:
        return ParallelCollectionRDD(self, data, partitions)  # type: ignore[arg-type]

    def submit(self, rdd: RDD, func: Callable[[int, Any], Any], description: str = "") -> Job:
        job = Job(next(self._job_ids), rdd, func, list(range(rdd.num_partitions)), description or rdd.name)
        self._run(self.core.submit_job, job)
        return job

    def run_job(self, rdd: RDD, func: Callable[[int, Any], Any], splits: list[int] | None = None,
                description: str = "", max_time: float = 3600.0) -> list[Any]:
        job = self.submit(rdd, func, description)
        assert self.cluster.run_until(lambda: job.ended, max_time), f"job {job.id} did not end"
        if job.error is not None:
            raise AssertionError(f"job {job.id} failed: {job.error.message}")
        return [serde.loads(r) for r in job.results]


class SimSparkExecutor(corral.Executor):
    """Runs each task when it arrives; reports it `task_seconds` later."""

    def __init__(self, harness: SimSpark) -> None:
        self.harness = harness
        self.id = ""
        self.driver: Any = None
        self.runtime: ExecutorRuntime
        self.queue: list[tuple[Any, ...]] = []
        self.busy = 0

    def launch_task(self, driver, task):
        self.driver = driver
        self.id = corral.unpack(task.data)["executor_id"]
        self.runtime = ExecutorRuntime(self.id, self.harness.work_dir / self.id, 1, lambda m: None, False)
        self.runtime.blocks_source = self.harness.blocks
        driver.send_status_update(corral.task_status(task.task_id, corral.TASK_RUNNING))
        self.harness.link_up(self)
        self._beat()

    def _beat(self) -> None:
        """Heartbeats to the driver, as the real executor sends them."""
        self.harness.from_executor(self.id, [(int(Msg.HEARTBEAT),)])
        self.driver.call_later(self.harness.config.heartbeat_interval, self._beat)

    def deliver(self, messages: list[tuple[Any, ...]]) -> None:
        self.driver.call_later(LATENCY, lambda: self._receive(messages))

    def _receive(self, messages: list[tuple[Any, ...]]) -> None:
        for msg in messages:
            if msg[0] == Msg.LAUNCH:
                self.queue.extend(msg[1])
            elif msg[0] == Msg.KILL:
                self.queue = [t for t in self.queue if t[0] != msg[1]]
            elif msg[0] == Msg.STOP:
                self.driver.send_status_update(corral.task_status(self.id, corral.TASK_FINISHED))
                self.driver.stop()
                return
            else:
                self.runtime.handle([msg])
        self._start_next()

    def _start_next(self) -> None:
        while self.busy < self.runtime.cores and self.queue:
            task = self.queue.pop(0)
            self.busy += 1
            result = self.runtime.run(*task)
            self.driver.call_later(self.harness.task_seconds(self.id, task), lambda r=result: self._done(r))

    def _done(self, result: tuple[Any, ...]) -> None:
        self.busy -= 1
        self.harness.from_executor(self.id, [(int(Msg.RESULTS), [result])])
        self._start_next()

    def kill_task(self, driver, task_id):
        self.harness.link_down(self.id)
        driver.send_status_update(corral.task_status(task_id, corral.TASK_KILLED))
        driver.stop()

    def shutdown(self, driver):
        self.harness.link_down(self.id)
