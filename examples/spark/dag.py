"""The DAG scheduler: jobs cut into stages at shuffle boundaries, stages run once their
parents' outputs are all available, and lost outputs recomputed from lineage.

A map stage belongs to its shuffle and outlives jobs: its outputs (`MapStatus`, one per
map partition) stay registered, so a later job that reads the same shuffle skips it. A
stage's missing parents are found afresh each time it is submitted, walking its RDD
graph through narrow dependencies and stopping at fully cached RDDs and at shuffles
whose outputs are all available.

When an executor is lost, its map outputs and cached partitions are forgotten; a stage
running on them pauses while only the missing partitions of the stages that produced
them run again, and resumes with its own remaining partitions. A fetch failure does the
same for the shuffle it names. Nothing here does I/O or reads a clock: it is driven by
`DriverCore`, and reports through `emit`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable

from corral.examples.spark import serde
from corral.examples.spark.rdd import RDD
from corral.examples.spark.shared import collect_broadcasts
from corral.examples.spark.shuffle import ShuffleDependency
from corral.examples.spark.taskrun import StageTask
from corral.examples.spark.taskset import Attempt, SchedulingConfig, TaskSet

#: an executor holding this share of a reduce partition's input is preferred for it
REDUCER_PREFERENCE_SHARE = 0.2
#: a stage paused this many times by fetch failures fails its jobs
MAX_STAGE_ATTEMPTS = 4


@dataclass(frozen=True)
class MapStatus:
    executor_id: str
    address: str
    sizes: list[int]


@dataclass
class TaskFailure:
    """A task's exception, as the executor reported it."""

    pickled: bytes | None
    type_name: str
    message: str
    traceback: str


@dataclass
class JobError:
    message: str
    failure: TaskFailure | None = None


class StageKind(enum.Enum):
    MAP = "map"
    RESULT = "result"


class StageState(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    RUNNING = "running"


@dataclass
class JobCounters:
    tasks: int = 0
    retries: int = 0
    fetch_failures: int = 0
    recomputed: int = 0
    shuffle_written: int = 0
    shuffle_read: int = 0


@dataclass(eq=False)
class Job:
    id: int
    rdd: RDD
    func: Callable[[int, Any], Any]
    splits: list[int]
    description: str
    submitted: float = 0.0
    finished: float | None = None
    results: list[bytes | None] = field(default_factory=list)
    #: split -> its index in `splits` and `results`
    position: dict[int, int] = field(default_factory=dict)
    remaining: int = 0
    error: JobError | None = None
    counters: JobCounters = field(default_factory=JobCounters)
    #: every stage that ran tasks for this job, in the order they started
    stages: list["Stage"] = field(default_factory=list)
    #: stages the job needed when it was submitted (more may run after losses)
    planned_stages: int = 1
    final_stage: "Stage | None" = None

    @property
    def ended(self) -> bool:
        return self.finished is not None


@dataclass(eq=False)
class Stage:
    id: int
    kind: StageKind
    rdd: RDD
    splits: list[int]
    dep: ShuffleDependency | None = None
    job: Job | None = None
    jobs: set[int] = field(default_factory=set)
    state: StageState = StageState.IDLE
    pending: set[int] = field(default_factory=set)
    taskset: TaskSet | None = None
    blob_id: int | None = None
    blob: bytes | None = None
    broadcasts: set[str] = field(default_factory=set)
    #: shuffles read by this stage's pipeline (through narrow dependencies)
    reads: list[int] = field(default_factory=list)
    #: shuffles it waits for besides its missing parents (after a fetch failure)
    extra_waits: set[int] = field(default_factory=set)
    completed_once: set[int] = field(default_factory=set)
    fetch_pauses: int = 0

    @property
    def name(self) -> str:
        return f"{self.rdd.name} at {self.rdd.callsite}"

    def done_count(self) -> int:
        return len(self.splits) - len(self.pending)


class DagScheduler:
    def __init__(self, config: SchedulingConfig, emit: Callable[[Any], None],
                 alive: Callable[[], set[str]], merge_accumulators: Callable[[dict[str, Any]], None]) -> None:
        self.config = config
        self._emit = emit
        self._alive = alive
        self._merge_accumulators = merge_accumulators
        self.jobs: dict[int, Job] = {}
        self.shuffle_stages: dict[int, Stage] = {}
        self.outputs: dict[int, list[MapStatus | None]] = {}
        #: (rdd id, split) -> executors holding that cached partition
        self.cache_locs: dict[tuple[int, int], set[str]] = {}
        self.waiting: list[Stage] = []
        #: task sets of running stages, in the order their stages were created (FIFO)
        self.tasksets: list[TaskSet] = []
        self._stage_ids = 0
        self._blob_ids = 0

    # -------------------------------------------------------------------- jobs
    def submit(self, job: Job, now: float) -> None:
        job.submitted = now
        job.results = [None] * len(job.splits)
        job.position = {split: i for i, split in enumerate(job.splits)}
        job.remaining = len(job.splits)
        self.jobs[job.id] = job
        final = self._new_stage(StageKind.RESULT, job.rdd, list(job.splits), job=job)
        final.pending = set(job.splits)
        job.final_stage = final
        if not job.splits:
            self._finish_job(job, None, now)
            return
        self._submit(final, job, now)
        active = {s.id: s for s in [*self.waiting, *(ts.stage for ts in self.tasksets)]}
        job.planned_stages = max(1, sum(1 for s in active.values() if job.id in s.jobs))

    def _new_stage(self, kind: StageKind, rdd: RDD, splits: list[int], dep: ShuffleDependency | None = None,
                   job: Job | None = None) -> Stage:
        self._stage_ids += 1
        stage = Stage(self._stage_ids, kind, rdd, splits, dep, job)
        stage.reads = self._shuffles_read(rdd)
        return stage

    def _shuffles_read(self, rdd: RDD) -> list[int]:
        found: list[int] = []
        seen: set[int] = set()
        stack = [rdd]
        while stack:
            current = stack.pop()
            if current.id in seen:
                continue
            seen.add(current.id)
            for dep in current.deps:
                if isinstance(dep, ShuffleDependency):
                    self._map_stage(dep)
                    found.append(dep.shuffle_id)
                else:
                    stack.append(dep.rdd)
        return found

    def _map_stage(self, dep: ShuffleDependency) -> Stage:
        stage = self.shuffle_stages.get(dep.shuffle_id)
        if stage is None:
            count = dep.rdd.num_partitions
            stage = self._new_stage(StageKind.MAP, dep.rdd, list(range(count)), dep=dep)
            stage.pending = set(range(count))
            self.shuffle_stages[dep.shuffle_id] = stage
            self.outputs[dep.shuffle_id] = [None] * count
        return stage

    def _available(self, shuffle_id: int) -> bool:
        return not self.shuffle_stages[shuffle_id].pending

    def _all_cached(self, rdd: RDD) -> bool:
        alive = self._alive()
        return all(self.cache_locs.get((rdd.id, split), set()) & alive for split in range(rdd.num_partitions))

    def _missing_parents(self, stage: Stage) -> list[Stage]:
        missing: dict[int, Stage] = {}
        seen: set[int] = set()
        stack = [stage.rdd]
        while stack:
            rdd = stack.pop()
            if rdd.id in seen:
                continue
            seen.add(rdd.id)
            if rdd.persisted and self._all_cached(rdd):
                continue
            for dep in rdd.deps:
                if isinstance(dep, ShuffleDependency):
                    if not self._available(dep.shuffle_id):
                        parent = self._map_stage(dep)
                        missing[parent.id] = parent
                else:
                    stack.append(dep.rdd)
        for shuffle_id in stage.extra_waits:
            if not self._available(shuffle_id):
                parent = self.shuffle_stages[shuffle_id]
                missing[parent.id] = parent
        return list(missing.values())

    def _submit(self, stage: Stage, job: Job, now: float) -> None:
        stage.jobs.add(job.id)
        if stage.state is not StageState.IDLE:
            return
        if stage.kind is StageKind.MAP and not stage.pending:
            return
        missing = self._missing_parents(stage)
        if missing:
            stage.state = StageState.WAITING
            self.waiting.append(stage)
            for parent in missing:
                self._submit(parent, job, now)
        else:
            self._run(stage, now)

    def _run(self, stage: Stage, now: float) -> None:
        if stage in self.waiting:
            self.waiting.remove(stage)
        stage.extra_waits.clear()
        if not stage.pending:
            self._stage_done(stage, now)
            return
        if stage.blob is None:
            try:
                self._pickle(stage)
            except serde.SerialisationError as exc:
                self._abort(stage, JobError(str(exc)), now)
                return
        stage.state = StageState.RUNNING
        for job_id in stage.jobs:
            job = self.jobs.get(job_id)
            if job is not None and stage not in job.stages:
                job.stages.append(stage)
        if stage.taskset is None:
            stage.taskset = TaskSet(stage, self.config, now)
            self.tasksets.append(stage.taskset)
            self.tasksets.sort(key=lambda ts: (min(ts.stage.jobs, default=0), ts.stage.id))
        stage.taskset.paused = False
        stage.taskset.add(stage.pending, lambda split: self._prefs(stage, split))

    def _pickle(self, stage: Stage) -> None:
        task = StageTask(stage.rdd, dep=stage.dep) if stage.kind is StageKind.MAP else StageTask(stage.rdd, func=stage.job.func)
        with collect_broadcasts() as ids:
            stage.blob = serde.dumps_function(task, f"stage {stage.name}")
        stage.broadcasts = ids
        self._blob_ids += 1
        stage.blob_id = self._blob_ids

    def _stage_done(self, stage: Stage, now: float) -> None:
        self._retire(stage)
        for waiting in list(self.waiting):
            if waiting in self.waiting and not self._missing_parents(waiting):
                self._run(waiting, now)

    def _retire(self, stage: Stage) -> None:
        """The stage has nothing to run: drop its task set (stragglers are ignored)."""
        stage.state = StageState.IDLE
        if stage in self.waiting:
            self.waiting.remove(stage)
        taskset = stage.taskset
        if taskset is not None:
            taskset.removed = True
            self.tasksets.remove(taskset)
            stage.taskset = None
            self._emit(StageRetired(stage))

    # ------------------------------------------------------------ locations
    def _prefs(self, stage: Stage, split: int) -> list[str]:
        alive = self._alive()
        stack = [(stage.rdd, split)]
        seen = 0
        while stack and seen < 64:
            seen += 1
            rdd, part = stack.pop()
            if rdd.persisted:
                locs = self.cache_locs.get((rdd.id, part), set()) & alive
                if locs:
                    return sorted(locs)
            for dep in rdd.deps:
                if isinstance(dep, ShuffleDependency):
                    prefs = self._reducer_prefs(dep.shuffle_id, part, alive)
                    if prefs:
                        return prefs
                else:
                    stack.extend((dep.rdd, p) for p in dep.parent_splits(part))
        return []

    def _reducer_prefs(self, shuffle_id: int, split: int, alive: set[str]) -> list[str]:
        by_executor: dict[str, int] = {}
        total = 0
        for status in self.outputs[shuffle_id]:
            if status is not None:
                size = status.sizes[split]
                total += size
                by_executor[status.executor_id] = by_executor.get(status.executor_id, 0) + size
        if not total:
            return []
        return sorted(e for e, size in by_executor.items() if size >= REDUCER_PREFERENCE_SHARE * total and e in alive)

    def shuffle_inputs(self, stage: Stage, split: int) -> dict[int, list[tuple[str, str, list[int]]]] | None:
        """Where `split`'s non-empty blocks are, for every complete shuffle the stage reads."""
        inputs = {}
        for shuffle_id in stage.reads:
            if not self._available(shuffle_id):
                continue
            by_executor: dict[tuple[str, str], list[int]] = {}
            for map_id, status in enumerate(self.outputs[shuffle_id]):
                assert status is not None
                if status.sizes[split]:
                    by_executor.setdefault((status.executor_id, status.address), []).append(map_id)
            inputs[shuffle_id] = [(e, a, maps) for (e, a), maps in by_executor.items()]
        return inputs or None

    # ---------------------------------------------------------------- tasks
    def task_launched(self, attempt: Attempt) -> None:
        for job in self._jobs_of(attempt.taskset.stage):
            job.counters.tasks += 1

    def _jobs_of(self, stage: Stage) -> list[Job]:
        return [self.jobs[j] for j in stage.jobs if j in self.jobs]

    def task_succeeded(self, attempt: Attempt, payload: tuple[Any, dict[str, Any], list[tuple[int, int]]],
                       metrics: tuple[float, int, int], executor_id: str, address: str, now: float) -> None:
        taskset = attempt.taskset
        stage = taskset.stage
        taskset.ended(attempt)
        value, accumulators, new_blocks = payload
        for key in new_blocks:
            self.cache_locs.setdefault(tuple(key), set()).add(executor_id)
        jobs = self._jobs_of(stage)
        for job in jobs:
            job.counters.shuffle_written += metrics[1]
            job.counters.shuffle_read += metrics[2]
        if taskset.removed or attempt.split not in stage.pending:
            return  # a straggler of a finished stage, or a speculative copy that lost
        taskset.durations.append(metrics[0])
        split = attempt.split
        for other in taskset.running.get(split, ()):
            self._emit(KillTask(other.executor_id, other.task_id))
        stage.pending.discard(split)
        if accumulators:
            self._merge_accumulators(accumulators)
        if stage.kind is StageKind.MAP:
            assert stage.dep is not None
            self.outputs[stage.dep.shuffle_id][split] = MapStatus(executor_id, address, value)
            if split in stage.completed_once:
                for job in jobs:
                    job.counters.recomputed += 1
            stage.completed_once.add(split)
            if not stage.pending and stage.state is StageState.RUNNING:
                self._stage_done(stage, now)
        else:
            job = stage.job
            assert job is not None
            job.results[job.position[split]] = value
            job.remaining -= 1
            if job.remaining == 0:
                self._finish_job(job, None, now)

    def task_failed(self, attempt: Attempt, failure: TaskFailure, now: float) -> None:
        """The user's code raised: retried elsewhere, or the jobs fail after the last attempt."""
        taskset = attempt.taskset
        taskset.ended(attempt)
        if taskset.removed or attempt.split not in taskset.stage.pending:
            return
        failures = taskset.failed(attempt)
        if failures >= self.config.max_task_failures:
            self._abort(taskset.stage, JobError(
                f"task {attempt.split} of stage {taskset.stage.id} ({taskset.stage.name}) failed {failures} times; "
                f"the last failure: {failure.type_name}: {failure.message}", failure), now)
        else:
            for job in self._jobs_of(taskset.stage):
                job.counters.retries += 1
            taskset.requeue(attempt.split)

    def task_lost(self, attempt: Attempt, now: float) -> None:
        """The attempt's executor went away, or the task was killed: run it again (not a failure)."""
        taskset = attempt.taskset
        taskset.ended(attempt)
        if taskset.removed or attempt.split not in taskset.stage.pending:
            return
        for job in self._jobs_of(taskset.stage):
            job.counters.retries += 1
        taskset.requeue(attempt.split)

    def task_fetch_failed(self, attempt: Attempt, shuffle_id: int, source: str, message: str, now: float) -> None:
        taskset = attempt.taskset
        stage = taskset.stage
        taskset.ended(attempt)
        if taskset.removed or attempt.split not in stage.pending:
            return
        for job in self._jobs_of(stage):
            job.counters.retries += 1
            job.counters.fetch_failures += 1
        if shuffle_id in self.shuffle_stages:
            self._forget_outputs(lambda sid, status: sid == shuffle_id and status.executor_id == source)
            stage.extra_waits.add(shuffle_id)
        taskset.requeue(attempt.split)
        if stage.state is StageState.RUNNING and self._missing_parents(stage):
            stage.fetch_pauses += 1
            if stage.fetch_pauses > MAX_STAGE_ATTEMPTS:
                self._abort(stage, JobError(f"stage {stage.id} ({stage.name}) could not read its shuffle input "
                                            f"after {MAX_STAGE_ATTEMPTS} attempts: {message}"), now)
                return
        self._recheck(now)

    # ------------------------------------------------------------ executors
    def executor_lost(self, executor_id: str, now: float) -> None:
        """Forget what `executor_id` held; rerun what the active stages now miss."""
        self._forget_outputs(lambda sid, status: status.executor_id == executor_id)
        for key in [k for k, locs in self.cache_locs.items() if executor_id in locs]:
            locs = self.cache_locs[key]
            locs.discard(executor_id)
            if not locs:
                del self.cache_locs[key]
        self._recheck(now)

    def _forget_outputs(self, lost: Callable[[int, MapStatus], bool]) -> None:
        for shuffle_id, statuses in self.outputs.items():
            stage = self.shuffle_stages[shuffle_id]
            for split, status in enumerate(statuses):
                if status is not None and lost(shuffle_id, status):
                    statuses[split] = None
                    stage.pending.add(split)

    def _recheck(self, now: float) -> None:
        """Pause running stages whose inputs went missing (and submit the stages that
        make them); requeue map partitions whose outputs were lost."""
        for taskset in list(self.tasksets):
            stage = taskset.stage
            if stage.state is not StageState.RUNNING:
                continue
            missing = self._missing_parents(stage)
            if missing:
                stage.state = StageState.WAITING
                taskset.paused = True
                self.waiting.append(stage)
                for parent in missing:
                    for job in self._jobs_of(stage):
                        self._submit(parent, job, now)
            else:
                taskset.add(stage.pending, lambda split, stage=stage: self._prefs(stage, split))

    def forget_shuffle(self, shuffle_id: int) -> bool:
        """Drop a shuffle's map stage and outputs, unless an active stage still needs them."""
        stage = self.shuffle_stages.get(shuffle_id)
        if stage is None:
            return False
        active = [*self.waiting, *(ts.stage for ts in self.tasksets)]
        if stage in active or any(shuffle_id in s.reads for s in active):
            return False
        del self.shuffle_stages[shuffle_id]
        del self.outputs[shuffle_id]
        return True

    # -------------------------------------------------------------- endings
    def _abort(self, stage: Stage, error: JobError, now: float) -> None:
        for job in self._jobs_of(stage):
            self._finish_job(job, error, now)

    def cancel(self, job: Job, reason: str, now: float) -> None:
        self._finish_job(job, JobError(reason), now)

    def fail_all(self, error: JobError, now: float) -> None:
        for job in list(self.jobs.values()):
            self._finish_job(job, error, now)

    def _finish_job(self, job: Job, error: JobError | None, now: float) -> None:
        if job.ended:
            return
        job.error = error
        job.finished = now
        self.jobs.pop(job.id, None)
        for stage in [*self.waiting, *(ts.stage for ts in self.tasksets)]:
            stage.jobs.discard(job.id)
            if not stage.jobs:
                self._retire(stage)
        if job.final_stage is not None:
            self._retire(job.final_stage)
            job.final_stage.job = None  # no cycle: the job's RDDs go as soon as the program drops them
        self._emit(JobEnded(job))


@dataclass
class JobEnded:
    job: Job


@dataclass
class StageRetired:
    """A stage's task set is gone: the executors can forget its blob."""

    stage: Stage


@dataclass
class KillTask:
    executor_id: str
    task_id: int

