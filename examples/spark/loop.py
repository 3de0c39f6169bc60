"""`DriverLoop`: the one thread that owns a `DriverCore`. Other threads (the user's, the
corral callback thread, the executor links' readers) post events to it; it runs them in
order, ticks the core when a deadline is due, and hands the actions that result to the
backend's performer. Events that arrive together are handled together, so what they
produce for one executor leaves as one frame."""
from __future__ import annotations

import concurrent.futures
import logging
import math
import queue
import threading
import time
from typing import Any, Callable

from corral.examples.spark.core import DriverCore
from corral.examples.spark.dag import JobError

log = logging.getLogger(__name__)

#: events handled in one turn at most (then actions go out)
MAX_BATCH = 512


class DriverLoop:
    def __init__(self, core: DriverCore, perform: Callable[[Any], None]) -> None:
        self.core = core
        self._perform = perform
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spark-driver-loop", daemon=True)
        self.clock = time.monotonic

    def start(self) -> None:
        self._thread.start()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args, now) on the loop thread."""
        self._queue.put((fn, args, None))

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run fn(*args, now) on the loop thread and return its result, once the actions
        of its turn have been performed."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fn, args, future))
        return future.result(timeout)

    def stop(self) -> None:
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        core = self.core
        while True:
            deadline = core.next_deadline()
            timeout = None if deadline is None or math.isinf(deadline) else max(0.0, deadline - self.clock())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = ()
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            now = self.clock()
            answers: list[tuple[Any, Any]] = []
            for event in batch:
                if event is None:
                    self._flush()
                    return
                if event:
                    self._handle(event, now, answers)
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                self._guarded(core.tick, now)
            self._flush()
            for future, result in answers:  # once what the calls caused has been done
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _handle(self, event: tuple[Callable[..., Any], tuple[Any, ...], Any], now: float,
                answers: list[tuple[Any, Any]]) -> None:
        fn, args, future = event
        try:
            result = fn(*args, now)
        except Exception as exc:
            log.exception("the driver failed handling %s", getattr(fn, "__name__", fn))
            result = exc
            self._fail_everything(exc, now)
        if future is not None:
            answers.append((future, result))

    def _guarded(self, fn: Callable[[float], None], now: float) -> None:
        try:
            fn(now)
        except Exception as exc:
            log.exception("the driver failed in %s", getattr(fn, "__name__", fn))
            self._fail_everything(exc, now)

    def _fail_everything(self, exc: Exception, now: float) -> None:
        """A bug in the engine: fail the jobs with it rather than hang them."""
        try:
            self.core.dag.fail_all(JobError(f"internal error in the driver: {type(exc).__name__}: {exc}"), now)
        except Exception:
            log.exception("could not fail the jobs")

    def _flush(self) -> None:
        for action in self.core.take_actions():
            try:
                self._perform(action)
            except Exception:
                log.exception("performing %r failed", type(action).__name__)
