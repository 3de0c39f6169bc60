"""Executor processes: each container is one OS process (and its children) in its own
session and process group, started in a fresh sandbox directory with stdout and stderr
captured to files there. Exits are reported through a callback, from a waiter thread.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)

ExitCallback = Callable[[str, int, str], None]


class LaunchError(RuntimeError):
    """The executor process could not be started."""


@dataclass
class Container:
    id: str
    process: subprocess.Popen[bytes]
    sandbox: Path
    killing: bool = False


def executor_argv(command: pb.CommandInfo) -> list[str]:
    if command.shell:
        return ["/bin/sh", "-c", command.value]
    return list(command.arguments) or [command.value]


def describe_status(returncode: int) -> str:
    if returncode < 0:
        return f"executor terminated by signal {signal.Signals(-returncode).name}"
    return f"executor exited with status {returncode}"


class Containerizer:
    def __init__(self, work_dir: Path, on_exit: ExitCallback) -> None:
        self.work_dir = Path(work_dir)
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self.containers: dict[str, Container] = {}
        self.sandboxes_root.mkdir(parents=True, exist_ok=True)

    @property
    def sandboxes_root(self) -> Path:
        return self.work_dir / "sandboxes"

    def sandbox_path(self, framework_id: str, executor_id: str, container_id: str) -> Path:
        return self.sandboxes_root / framework_id / executor_id / container_id

    def launch(self, container_id: str, framework_id: str, executor: pb.ExecutorInfo, environment: dict[str, str]) -> Path:
        sandbox = self.sandbox_path(framework_id, executor.executor_id.value, container_id)
        env = dict(os.environ)
        env.update(environment)
        for var in executor.command.environment.variables:
            env[var.name] = var.value
        env["CORRAL_SANDBOX"] = str(sandbox)
        try:
            sandbox.mkdir(parents=True, exist_ok=False)
            with open(sandbox / "stdout", "wb") as out, open(sandbox / "stderr", "wb") as err:
                process = subprocess.Popen(
                    executor_argv(executor.command), env=env, cwd=sandbox, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True,
                )
        except OSError as exc:
            raise LaunchError(f"cannot start executor {executor.executor_id.value!r}: {exc}") from exc
        container = Container(container_id, process, sandbox)
        with self._lock:
            self.containers[container_id] = container
        threading.Thread(target=self._wait, args=(container,), name=f"wait-{container_id}", daemon=True).start()
        log.info("launched container %s (pid %d) in %s", container_id, process.pid, sandbox)
        return sandbox

    def _wait(self, container: Container) -> None:
        returncode = container.process.wait()
        with self._lock:
            self.containers.pop(container.id, None)
        self._on_exit(container.id, returncode, describe_status(returncode))

    def kill(self, container_id: str, grace: float) -> None:
        """SIGTERM the container's process group; SIGKILL it after `grace` seconds."""
        with self._lock:
            container = self.containers.get(container_id)
        if container is None or container.killing:
            return
        container.killing = True
        self._signal(container, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        if grace > 0:
            timer = threading.Timer(grace, self._signal, args=(container, signal.SIGKILL))
            timer.daemon = True
            timer.start()

    def _signal(self, container: Container, sig: int) -> None:
        if container.process.poll() is None:
            try:
                os.killpg(container.process.pid, sig)
            except ProcessLookupError:
                pass

    def kill_all(self, grace: float) -> None:
        with self._lock:
            ids = list(self.containers)
        for cid in ids:
            self.kill(cid, grace)

    def wait_all(self, timeout: float) -> bool:
        with self._lock:
            processes = [c.process for c in self.containers.values()]
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
        return True
