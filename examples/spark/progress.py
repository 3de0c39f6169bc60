"""What the user sees while a job runs and when it ends.

On a terminal: one line redrawn in place, `job 3 [=====     ] stage 2/3 reduce_by_key at
wc.py:12: 45/128 tasks, 12.3s`. Elsewhere: a plain line when each stage starts and ends.
Either way, a summary line when the job ends (`JobSummary`)."""
from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from corral.examples.spark.dag import Job, Stage

BAR_WIDTH = 24


@dataclass(frozen=True)
class JobSummary:
    job_id: int
    description: str
    succeeded: bool
    seconds: float
    stages: int
    tasks: int
    #: task attempts run again (failures, lost executors, fetch failures)
    retries: int
    #: of which after a shuffle block could not be read
    fetch_failures: int
    #: map partitions computed again because their output was lost
    recomputed: int
    shuffle_written: int
    shuffle_read: int

    @classmethod
    def of(cls, job: Job) -> "JobSummary":
        c = job.counters
        return cls(job.id, job.description, job.error is None, (job.finished or job.submitted) - job.submitted,
                   len(job.stages), c.tasks, c.retries, c.fetch_failures, c.recomputed, c.shuffle_written,
                   c.shuffle_read)

    def line(self) -> str:
        outcome = "finished" if self.succeeded else "failed"
        return (f"job {self.job_id} ({self.description}) {outcome} in {self.seconds:.2f}s: {self.stages} stage(s), "
                f"{self.tasks} task(s), {self.retries} retried"
                + (f" ({self.fetch_failures} after fetch failures)" if self.fetch_failures else "")
                + f", {self.recomputed} partition(s) recomputed, "
                f"shuffle {_size(self.shuffle_written)} written / {_size(self.shuffle_read)} read")


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Follows one job from the thread that waits for it."""

    def __init__(self, stream: TextIO, enabled: bool | None) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        #: None: a bar on a terminal, plain lines elsewhere; False: nothing
        self.enabled = True if enabled is None else enabled

    def follow(self, job: Job, done: threading.Event) -> None:
        """Wait until `done`, reporting as it goes."""
        if not self.enabled:
            done.wait()
            return
        started = time.monotonic()
        reported: dict[int, str] = {}
        while not done.wait(0.1 if self.tty else 0.25):
            if self.tty:
                self._draw(job, time.monotonic() - started)
            else:
                self._log_stages(job, reported)
        if self.tty:
            self.stream.write("\r" + " " * (shutil.get_terminal_size().columns - 1) + "\r")
        else:
            self._log_stages(job, reported)
        self.stream.write(JobSummary.of(job).line() + "\n")
        self.stream.flush()

    @staticmethod
    def _current(job: Job) -> tuple[int, Stage | None]:
        stages = list(job.stages)
        for index in range(len(stages) - 1, -1, -1):
            if stages[index].pending:
                return index + 1, stages[index]
        return len(stages), stages[-1] if stages else None

    def _draw(self, job: Job, elapsed: float) -> None:
        index, stage = self._current(job)
        if stage is None:
            text = f"job {job.id} ({job.description}): waiting for executors, {elapsed:.1f}s"
        else:
            done, total = stage.done_count(), len(stage.splits)
            filled = BAR_WIDTH * done // max(total, 1)
            text = (f"job {job.id} [{'=' * filled}{' ' * (BAR_WIDTH - filled)}] stage {index}/{max(job.planned_stages, len(job.stages))} "
                    f"{stage.name}: {done}/{total} tasks, {elapsed:.1f}s")
        width = shutil.get_terminal_size().columns - 1
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()

    def _log_stages(self, job: Job, reported: dict[int, str]) -> None:
        total = max(job.planned_stages, len(job.stages))
        for index, stage in enumerate(list(job.stages), 1):
            if stage.id not in reported:
                reported[stage.id] = "started"
                self.stream.write(f"job {job.id}: stage {index}/{total} ({stage.name}) started, "
                                  f"{len(stage.splits)} task(s)\n")
            if not stage.pending and reported[stage.id] != "done":
                reported[stage.id] = "done"
                self.stream.write(f"job {job.id}: stage {index}/{total} ({stage.name}) done\n")
        self.stream.flush()
