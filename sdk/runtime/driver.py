"""What the scheduler and executor drivers share: the I/O runtime, the callback
thread, and the driver's lifecycle (`DriverStatus`).

User callbacks run on one callback thread, in order, never on the I/O thread: a
callback that blocks, raises, or calls back into the driver cannot stall message flow.
An exception in a callback is logged and reported to the user's `error` callback; the
driver keeps running (`report_callback_error`, which the simulator's drivers use too).
"""
from __future__ import annotations

import enum
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable

from corral.engines.base import Callback, Engine
from corral.runtime import Runtime
from corral.runtime.actions import Performer

if TYPE_CHECKING:
    from corral.security.links import CurveLinks

log = logging.getLogger(__name__)


class DriverStatus(enum.Enum):
    NOT_STARTED = "DRIVER_NOT_STARTED"
    RUNNING = "DRIVER_RUNNING"
    ABORTED = "DRIVER_ABORTED"
    STOPPED = "DRIVER_STOPPED"


_SENTINEL = object()


def report_callback_error(user: Any, driver: Any, method: str, exc: Exception) -> None:
    """The user's callback `method` raised `exc`: log it and report it to the user's
    `error` callback (unless `error` raised it: that is only logged). The driver goes on."""
    log.error("%s.%s raised", type(user).__name__, method, exc_info=exc)
    if method != "error":
        try:
            user.error(driver, f"{method} callback raised {type(exc).__name__}: {exc}")
        except Exception:
            log.exception("error callback raised too")


class DriverBase:
    """Runs an engine in a `Runtime` and the user's callbacks on their own thread."""

    def __init__(self, user: Any, host: str = "127.0.0.1") -> None:
        self._user = user
        self._host = host
        self.status = DriverStatus.NOT_STARTED
        self._runtime: Runtime | None = None
        self._callbacks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._callback_thread: threading.Thread | None = None
        self._done = threading.Event()
        self._status_lock = threading.Lock()

    # -- to be provided by subclasses -------------------------------------------
    def _make_engine(self, address: str) -> Engine:
        raise NotImplementedError

    def _on_started(self, runtime: Runtime) -> None:
        raise NotImplementedError

    def _links(self) -> CurveLinks | None:
        """The driver's CurveZMQ links (None: plaintext)."""
        return None

    def _performers(self) -> dict[type, Performer]:
        """How the driver carries out its engine's actions besides Send (one table,
        built once at start): the user's callbacks go to the callback thread; subclasses
        add their engine's other actions."""
        return {Callback: self._callbacks.put}

    def _before_callback(self, callback: Callback) -> None:
        """Hook run on the callback thread before each user callback."""

    def _after_callback(self, callback: Callback, failed: bool) -> None:
        """Hook run on the callback thread after each user callback."""

    def _caught_up(self) -> None:
        """Hook run on the callback thread when it has run every callback queued so far."""

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> DriverStatus:
        with self._status_lock:
            if self.status is not DriverStatus.NOT_STARTED:
                return self.status
            self._runtime = Runtime(self._make_engine, host=self._host, curve=self._links())
            self._runtime.add_performers(self._performers())
            self._callback_thread = threading.Thread(target=self._callback_loop, name="corral-callbacks", daemon=True)
            self._callback_thread.start()
            self.status = DriverStatus.RUNNING
            self._runtime.start(name=f"corral-{type(self).__name__}")
            self._on_started(self._runtime)
            return self.status

    def _finish(self, status: DriverStatus) -> DriverStatus:
        with self._status_lock:
            if self.status is not DriverStatus.RUNNING:
                return self.status
            self.status = status
        if self._runtime is not None:
            self._runtime.stop()
            if not self._runtime.on_io_thread():
                self._runtime.join(5.0)
        self._callbacks.put(_SENTINEL)
        self._done.set()
        return status

    def abort(self) -> DriverStatus:
        return self._finish(DriverStatus.ABORTED)

    def join(self, timeout: float | None = None) -> DriverStatus:
        """Block until the driver is stopped or aborted."""
        self._done.wait(timeout)
        return self.status

    def run(self) -> DriverStatus:
        self.start()
        return self.join()

    # -- helpers --------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any) -> DriverStatus:
        """Run an engine call on the I/O thread."""
        if self.status is not DriverStatus.RUNNING or self._runtime is None:
            return self.status
        self._runtime.call_soon(fn, *args)
        return self.status

    @property
    def engine(self) -> Engine:
        assert self._runtime is not None, "driver not started"
        return self._runtime.engine

    def _now(self) -> float:
        assert self._runtime is not None
        return self._runtime.clock()

    def _callback_loop(self) -> None:
        while True:
            item = self._callbacks.get()
            if item is _SENTINEL:
                return
            callback: Callback = item
            method = callback.event._value_  # (`.value` is a Python-level property: slower)
            failed = False
            try:
                self._before_callback(callback)
                getattr(self._user, method)(self, *callback.args)
            except Exception as exc:
                failed = True
                report_callback_error(self._user, self, method, exc)
            self._after_callback(callback, failed)
            if self._callbacks.empty():
                self._caught_up()
