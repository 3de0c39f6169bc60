"""The driver's brain, without I/O: events in, actions out (h11-style).

`DriverCore` joins the DAG scheduler (`dag`), the task sets (`taskset`) and, on a corral
cluster, the executor pool (`pool`). It knows the registered executors and their task
slots, launches tasks into free slots (round robin, one task per executor per round, so
a small stage spreads), batches what it has for each executor into one `SendToExecutor`
per turn, and turns corral statuses, lost links and silent heartbeats into executor
losses. The threaded shell (`corral.examples.spark.driver`) feeds it in the real driver;
the simulator tests feed it directly.

When tasks turn out short (a running average under `short_task_seconds`), an executor
is given `prefetch` extra tasks per core, so that it never waits for the round trip to
the driver between two of them."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import corral
from corral.examples.spark.dag import DagScheduler, Job, JobEnded, JobError, KillTask, StageRetired, TaskFailure
from corral.examples.spark.pool import ExecutorPool, PoolConfig, PoolGaveUp
from corral.examples.spark.taskset import Attempt, SchedulingConfig, TaskSet
from corral.examples.spark.wire import Msg, Outcome


#: a deadline this close is due (clocks that add a delay to now may land just short of it)
DUE_SLACK = 1e-6


@dataclass
class EngineConfig(SchedulingConfig):
    #: seconds between heartbeats, each way
    heartbeat_interval: float = 1.0
    #: an executor silent this long is lost
    executor_timeout: float = 30.0
    short_task_seconds: float = 0.05
    prefetch: int = 3


@dataclass
class SendToExecutor:
    executor_id: str
    messages: list[tuple[Any, ...]]


@dataclass
class CloseLink:
    executor_id: str


@dataclass
class ExecutorUp:
    """An executor registered (the program may be waiting for them)."""

    executor_id: str


@dataclass(eq=False)
class ExecutorState:
    id: str
    address: str
    cores: int
    pid: int
    last_heard: float
    last_sent: float = 0.0
    running: dict[int, Attempt] = field(default_factory=dict)
    blobs: set[int] = field(default_factory=set)
    broadcasts: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ExecutorView:
    id: str
    pid: int
    #: the corral agent it runs on ("" in local mode)
    agent_id: str
    #: where it serves shuffle blocks
    address: str
    running_tasks: int
    #: map outputs it holds, over every shuffle
    map_outputs: int
    cached_partitions: int


class DriverCore:
    def __init__(self, config: EngineConfig, broadcast_blob: Callable[[str], bytes],
                 merge_accumulators: Callable[[dict[str, Any]], None], pool: PoolConfig | None = None,
                 make_executor_task: Callable[[str, corral.Offer], corral.TaskInfo] | None = None,
                 executor_prefix: str = "exec") -> None:
        """With `pool` (and `make_executor_task`), executors are launched on corral offers;
        without, they register on their own (local mode)."""
        self.config = config
        self.pool: ExecutorPool | None = None
        if pool is not None:
            assert make_executor_task is not None
            self.pool = ExecutorPool(pool, make_executor_task, self._pool_event, executor_prefix)
        self._broadcast_blob = broadcast_blob
        self._actions: list[Any] = []
        self.dag = DagScheduler(config, self._dag_event, self.alive, merge_accumulators)
        self.executors: dict[str, ExecutorState] = {}
        self.attempts: dict[int, Attempt] = {}
        self._task_ids = 0
        self._outbox: dict[str, list[tuple[Any, ...]]] = {}
        self._launches: dict[str, list[tuple[Any, ...]]] = {}
        self._task_seconds: float | None = None
        self._now = 0.0
        self.stopping = False
        #: executors lost so far (for the record and for tests)
        self.lost: list[tuple[str, str]] = []

    def alive(self) -> set[str]:
        return set(self.executors)

    # ------------------------------------------------------------------ jobs
    def submit_job(self, job: Job, now: float) -> None:
        self._now = now
        if self.pool is not None and self.pool.gave_up:
            job.finished = now
            job.error = JobError(f"no executors: {self.pool.gave_up}")
            self._actions.append(JobEnded(job))
            return
        self.dag.submit(job, now)
        self._schedule(now)

    def cancel_job(self, job: Job, reason: str, now: float) -> None:
        self._now = now
        self.dag.cancel(job, reason, now)

    # ------------------------------------------------------------ corral side
    def offers(self, offers: list[corral.Offer], now: float) -> None:
        self._now = now
        if self.pool is not None:
            self.pool.offers(offers, now)

    def executor_status(self, status: corral.TaskStatus, now: float) -> None:
        self._now = now
        if self.pool is not None and self.pool.status(status, now) is not None:
            self._lost(status.task_id.value, corral.state_name(status.state), now)

    def agent_lost(self, agent_id: str, now: float) -> None:
        self._now = now
        if self.pool is not None:
            for record in self.pool.agent_lost(agent_id, now):
                self._lost(record.id, "its agent was lost", now)

    # -------------------------------------------------------------- data path
    def executor_registered(self, executor_id: str, address: str, cores: int, pid: int, now: float) -> bool:
        """An executor connected; False (close its link) if it is not one of ours."""
        self._now = now
        if self.stopping or executor_id in self.executors:
            return False
        if self.pool is not None and not self.pool.registered(executor_id):
            return False
        self.executors[executor_id] = ExecutorState(executor_id, address, cores, pid, now, now)
        self._actions.append(ExecutorUp(executor_id))
        self._schedule(now)
        return True

    def executor_message(self, executor_id: str, messages: list[tuple[Any, ...]], now: float) -> None:
        self._now = now
        executor = self.executors.get(executor_id)
        if executor is None:
            return  # from an executor already given up for lost
        executor.last_heard = now
        for msg in messages:
            if msg[0] == Msg.RESULTS:
                for result in msg[1]:
                    self._result(executor, result, now)
        self._schedule(now)

    def executor_disconnected(self, executor_id: str, now: float) -> None:
        self._now = now
        if executor_id in self.executors:
            if self.pool is not None:
                self.pool.ended(executor_id, "its connection to the driver closed", now)
            self._lost(executor_id, "its connection to the driver closed", now)

    def _result(self, executor: ExecutorState, result: tuple[Any, ...], now: float) -> None:
        task_id, outcome, payload, metrics = result
        attempt = self.attempts.pop(task_id, None)
        executor.running.pop(task_id, None)
        if attempt is None:
            return
        if outcome == Outcome.SUCCESS:
            seconds = metrics[0]
            self._task_seconds = seconds if self._task_seconds is None else 0.8 * self._task_seconds + 0.2 * seconds
            self.dag.task_succeeded(attempt, payload, metrics, executor.id, executor.address, now)
        elif outcome == Outcome.FAILED:
            self.dag.task_failed(attempt, TaskFailure(*payload), now)
        elif outcome == Outcome.FETCH_FAILED:
            shuffle_id, _map_id, source, message = payload
            self.dag.task_fetch_failed(attempt, shuffle_id, source, message, now)
        else:
            self.dag.task_lost(attempt, now)

    def _lost(self, executor_id: str, reason: str, now: float) -> None:
        executor = self.executors.pop(executor_id, None)
        if executor is None:
            return
        self.lost.append((executor_id, reason))
        self._outbox.pop(executor_id, None)
        self._launches.pop(executor_id, None)
        self._actions.append(CloseLink(executor_id))
        for task_id, attempt in executor.running.items():
            self.attempts.pop(task_id, None)
            self.dag.task_lost(attempt, now)
        self.dag.executor_lost(executor_id, now)
        self._schedule(now)

    # ------------------------------------------------------------- scheduling
    def _capacity(self, executor: ExecutorState) -> int:
        if self._task_seconds is not None and self._task_seconds < self.config.short_task_seconds:
            return executor.cores * (1 + self.config.prefetch)
        return executor.cores

    def _schedule(self, now: float) -> None:
        tasksets = [ts for ts in self.dag.tasksets if not ts.paused and ts.has_queued()]
        if not tasksets or not self.executors:
            return
        alive = len(self.executors)
        open_executors = [e for e in self.executors.values() if len(e.running) < self._capacity(e)]
        while open_executors:
            still_open = []
            for executor in open_executors:
                for taskset in tasksets:
                    pick = taskset.next_for(executor.id, alive, now)
                    if pick is not None:
                        self._launch(executor, taskset, pick[0], pick[1], now)
                        if len(executor.running) < self._capacity(executor):
                            still_open.append(executor)
                        break
            open_executors = still_open

    def _launch(self, executor: ExecutorState, taskset: TaskSet, split: int, speculative: bool, now: float) -> None:
        stage = taskset.stage
        self._task_ids += 1
        attempt = Attempt(self._task_ids, taskset, split, executor.id, now, taskset.attempts[split], speculative)
        taskset.launched(attempt)
        self.attempts[attempt.task_id] = attempt
        executor.running[attempt.task_id] = attempt
        self.dag.task_launched(attempt)
        if stage.blob_id not in executor.blobs:
            out = self._outbox.setdefault(executor.id, [])
            for broadcast_id in stage.broadcasts - executor.broadcasts:
                out.append((int(Msg.BROADCAST), broadcast_id, self._broadcast_blob(broadcast_id)))
                executor.broadcasts.add(broadcast_id)
            out.append((int(Msg.STAGE), stage.blob_id, stage.blob))
            executor.blobs.add(stage.blob_id)
        self._launches.setdefault(executor.id, []).append(
            (attempt.task_id, stage.blob_id, split, attempt.number, self.dag.shuffle_inputs(stage, split)))

    def _dag_event(self, event: Any) -> None:
        if isinstance(event, StageRetired):
            blob_id = event.stage.blob_id
            for executor in self.executors.values():
                if blob_id in executor.blobs:
                    executor.blobs.discard(blob_id)
                    self._outbox.setdefault(executor.id, []).append((int(Msg.FORGET_STAGE), blob_id))
        elif isinstance(event, KillTask):
            if event.executor_id in self.executors:
                self._outbox.setdefault(event.executor_id, []).append((int(Msg.KILL), event.task_id))
        else:
            self._actions.append(event)

    def _pool_event(self, event: Any) -> None:
        if isinstance(event, PoolGaveUp):
            self.dag.fail_all(JobError(f"no executors: {event.message}"), self._now)
        self._actions.append(event)

    def executor_views(self) -> list[ExecutorView]:
        outputs = Counter(status.executor_id for statuses in self.dag.outputs.values() for status in statuses
                          if status is not None)
        cached = Counter(e for locs in self.dag.cache_locs.values() for e in locs)
        views = []
        for executor in self.executors.values():
            record = self.pool.records.get(executor.id) if self.pool is not None else None
            views.append(ExecutorView(executor.id, executor.pid, record.agent_id if record else "", executor.address,
                                      len(executor.running), outputs[executor.id], cached[executor.id]))
        return views

    # ----------------------------------------------------------- housekeeping
    def tell_executors(self, message: tuple[Any, ...]) -> None:
        """Send `message` to every executor (unpersist, dropped shuffles and broadcasts)."""
        for executor in self.executors.values():
            self._outbox.setdefault(executor.id, []).append(message)

    def drop_shuffle(self, shuffle_id: int, now: float) -> None:
        """Forget a shuffle nothing can read any more; the executors delete its files."""
        if self.dag.forget_shuffle(shuffle_id):
            self.tell_executors((int(Msg.DROP_SHUFFLE), shuffle_id))

    def tick(self, now: float) -> None:
        """Heartbeats both ways, speculation, delay-scheduling deadlines."""
        self._now = now
        for executor in list(self.executors.values()):
            if now - executor.last_heard > self.config.executor_timeout:
                if self.pool is not None:
                    self.pool.ended(executor.id, "it stopped sending heartbeats", now)
                self._lost(executor.id, f"no heartbeat for {self.config.executor_timeout:g}s", now)
            elif executor.last_sent + self.config.heartbeat_interval <= now + DUE_SLACK and executor.id not in self._outbox:
                self._outbox[executor.id] = [(int(Msg.HEARTBEAT),)]
        if self.config.speculation:
            for taskset in self.dag.tasksets:
                taskset.check_speculation(now)
        self._schedule(now)

    def next_deadline(self) -> float | None:
        times = [e.last_sent + self.config.heartbeat_interval for e in self.executors.values()]
        times += [d for ts in self.dag.tasksets if (d := ts.locality_deadline()) is not None]
        if self.config.speculation and any(ts.running for ts in self.dag.tasksets):
            times.append(self._now + self.config.speculation_min_seconds)
        return min(times) if times else None

    def stop(self, now: float) -> None:
        """Tell the executors to exit; take no more offers."""
        self.stopping = True
        if self.pool is not None:
            self.pool.stop()
        self.dag.fail_all(JobError("the context was stopped"), now)
        self.tell_executors((int(Msg.STOP),))

    def take_actions(self) -> list[Any]:
        """Everything to do now; what each executor is sent leaves as one message list."""
        for executor_id in set(self._outbox) | set(self._launches):
            messages = self._outbox.pop(executor_id, [])
            launches = self._launches.pop(executor_id, None)
            if launches:
                messages.append((int(Msg.LAUNCH), launches))
            executor = self.executors.get(executor_id)
            if executor is not None and messages:
                executor.last_sent = self._now
                self._actions.append(SendToExecutor(executor_id, messages))
        actions, self._actions = self._actions, []
        return actions
