"""Task health checks (command, HTTP, TCP), run by the executor next to its task.

Mesos semantics and defaults: the first check `delay_seconds` (15 s) after the task
starts, then every `interval_seconds` (10 s); a check that takes longer than
`timeout_seconds` (20 s) fails; failures within `grace_period_seconds` (10 s) of the
start do not count; HTTP answers 200-399 are healthy. The first result and every change
of health are reported; `consecutive_failures` (3) failures in a row end the task.

The checker runs on its own thread; how it waits is injected (`wait(seconds) -> bool`,
True meaning "stop"), so tests drive it without sleeping.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)

CheckType = pb.HealthCheck.Type


@dataclass(frozen=True)
class CheckResult:
    healthy: bool
    message: str


def probe(check: pb.HealthCheck, cwd: str | None = None, as_user: dict[str, Any] | None = None) -> CheckResult:
    """Run one check now (a command check as the task's user: `as_user`, Popen's user,
    group and extra_groups, when the executor runs its task as another user)."""
    timeout = check.timeout_seconds
    if check.type == CheckType.COMMAND:
        argv = ["/bin/sh", "-c", check.command.value] if check.command.shell else list(check.command.arguments)
        try:
            result = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=timeout, **(as_user or {}))
        except subprocess.TimeoutExpired:
            return CheckResult(False, f"command health check timed out after {timeout:g}s")
        except OSError as exc:
            return CheckResult(False, f"command health check could not run: {exc}")
        if result.returncode == 0:
            return CheckResult(True, "command health check passed")
        return CheckResult(False, f"command health check exited with status {result.returncode}")
    if check.type == CheckType.HTTP:
        url = f"{check.http.scheme}://127.0.0.1:{check.http.port}{check.http.path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, urllib.error.URLError) as exc:
            return CheckResult(False, f"HTTP health check of {url} failed: {exc}")
        if 200 <= status < 400:
            return CheckResult(True, f"HTTP health check of {url} answered {status}")
        return CheckResult(False, f"HTTP health check of {url} answered {status}")
    if check.type == CheckType.TCP:
        try:
            with socket.create_connection(("127.0.0.1", check.tcp.port), timeout=timeout):
                return CheckResult(True, f"TCP health check of port {check.tcp.port} connected")
        except OSError as exc:
            return CheckResult(False, f"TCP health check of port {check.tcp.port} failed: {exc}")
    return CheckResult(False, f"unsupported health check type {pb.HealthCheck.Type.Name(check.type)}")


def validate(check: pb.HealthCheck) -> str:
    """Why `check` cannot run ('' when it can)."""
    if check.type == CheckType.COMMAND and not (check.command.value or check.command.arguments):
        return "a COMMAND health check needs a command"
    if check.type == CheckType.HTTP and not 0 < check.http.port < 65536:
        return f"an HTTP health check needs a port, got {check.http.port}"
    if check.type == CheckType.TCP and not 0 < check.tcp.port < 65536:
        return f"a TCP health check needs a port, got {check.tcp.port}"
    if check.type == CheckType.UNKNOWN:
        return "health check type is missing"
    if check.interval_seconds <= 0 or check.timeout_seconds <= 0:
        return "health check interval and timeout must be positive"
    return ""


class HealthChecker:
    """Checks one task until stopped or until it has failed too often."""

    def __init__(
        self,
        check: pb.HealthCheck,
        on_health: Callable[[CheckResult], None],
        on_unhealthy: Callable[[CheckResult], None],
        *,
        cwd: str | None = None,
        wait: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        run_probe: Callable[[pb.HealthCheck, str | None], CheckResult] = probe,
    ) -> None:
        self.check = check
        self._on_health = on_health
        self._on_unhealthy = on_unhealthy
        self._cwd = cwd
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._clock = clock
        self._probe = run_probe
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="health-check", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """The checking loop (on the caller's thread)."""
        started = self._clock()
        healthy: bool | None = None
        failures = 0
        if self._wait(self.check.delay_seconds):
            return
        while not self._stop.is_set():
            result = self._probe(self.check, self._cwd)
            in_grace = self._clock() - started < self.check.grace_period_seconds
            if result.healthy:
                failures = 0
            elif not in_grace:
                failures += 1
            if result.healthy != healthy and (result.healthy or not in_grace):
                healthy = result.healthy
                self._on_health(result)
            if failures >= self.check.consecutive_failures:
                self._on_unhealthy(result)
                return
            if self._wait(self.check.interval_seconds):
                return
