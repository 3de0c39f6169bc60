"""The built-in command executor: runs one task's `CommandInfo` (a shell string or an
argv) as a child process in the sandbox and reports its life as status updates.

States: TASK_STARTING, TASK_RUNNING, then TASK_FINISHED (exit 0), TASK_FAILED (non-zero
exit, signal, or a command that cannot start), or TASK_KILLED (after a kill); the data
of the FINISHED or FAILED update of a command that ran is `pack({"exit_status": N})`
(its exit status; minus the signal's number when a signal ended it). Kill
policy: SIGTERM to the task's process group, the task's grace period (default 3 s),
then SIGKILL; TASK_KILLING first for frameworks that declare TASK_KILLING_STATE.
When the agent switches users it names the task's user in TASK_USER_ENV: the command
runs as that user (uid, gid, its groups; HOME, USER, LOGNAME), the executor stays the
agent's. A task with a `health_check` is checked while it runs (see corral.executors.health):
changes of health are sent as TASK_RUNNING updates with `healthy` set, and a task that
fails its checks is killed. Run as `python -m corral.executors.command` by the agent.
"""
from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
import sys
import threading
from typing import Any

from corral.engines.common import has_capability
from corral.executor import Executor, ExecutorDriver
from corral.executors import TASK_USER_ENV
from corral.security.links import EXECUTOR_KEY_ENV
from corral.executors.health import CheckResult, HealthChecker, probe, validate
from corral.protos import corral_pb2 as pb
from corral.tasks import pack

log = logging.getLogger(__name__)

DEFAULT_GRACE_PERIOD = 3.0


def command_argv(command: pb.CommandInfo) -> list[str]:
    if command.shell:
        return ["/bin/sh", "-c", command.value]
    return list(command.arguments) or [command.value]


def describe_exit(returncode: int) -> tuple[int, str]:
    """The terminal state and message for a command's exit status."""
    if returncode == 0:
        return pb.TASK_FINISHED, "Command exited with status 0"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return pb.TASK_FAILED, f"Command terminated with signal {name}"
    return pb.TASK_FAILED, f"Command exited with status {returncode}"


class CommandExecutor(Executor):
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.task: pb.TaskInfo | None = None
        self.framework: pb.FrameworkInfo | None = None
        self.killed = threading.Event()
        self.done = threading.Event()
        self.checker: HealthChecker | None = None
        self.kill_reason = ""
        self.last_health: bool | None = None

    def registered(self, driver, executor_info, framework_info, agent_info) -> None:  # type: ignore[override]
        self.framework = framework_info

    def _status(self, driver: ExecutorDriver, state: int, message: str = "", reason: int | None = None,
                healthy: bool | None = None, data: bytes = b"") -> None:
        assert self.task is not None
        status = pb.TaskStatus(task_id=self.task.task_id, state=state)
        if data:
            status.data = data
        if message:
            status.message = message
        if reason is not None:
            status.reason = reason
        if healthy is not None:
            status.healthy = healthy
        driver.send_status_update(status)

    def launch_task(self, driver: ExecutorDriver, task: pb.TaskInfo) -> None:  # type: ignore[override]
        if self.task is not None:
            status = pb.TaskStatus(task_id=task.task_id, state=pb.TASK_ERROR,
                                   message="the command executor runs one task only",
                                   reason=pb.TaskStatus.REASON_TASK_INVALID)
            driver.send_status_update(status)
            return
        self.task = task
        problem = validate(task.health_check) if task.HasField("health_check") else ""
        if problem:
            self._status(driver, pb.TASK_ERROR, problem, pb.TaskStatus.REASON_TASK_INVALID)
            self._finish(driver)
            return
        self._status(driver, pb.TASK_STARTING)
        env = dict(os.environ)
        env.pop(EXECUTOR_KEY_ENV, None)  # the executor's own secret: the task never sees it
        user = env.pop(TASK_USER_ENV, None)
        as_user: dict[str, Any] = {}
        if user:
            try:
                account = pwd.getpwnam(user)
            except KeyError:
                self._status(driver, pb.TASK_FAILED, f"cannot start command as user {user!r}: no such user",
                             pb.TaskStatus.REASON_CONTAINER_LAUNCH_FAILED)
                self._finish(driver)
                return
            env.update(HOME=account.pw_dir, USER=user, LOGNAME=user)
            as_user = {"user": account.pw_uid, "group": account.pw_gid,
                       "extra_groups": os.getgrouplist(user, account.pw_gid)}
        for var in task.command.environment.variables:
            env[var.name] = var.value
        try:
            self.process = subprocess.Popen(
                command_argv(task.command), env=env, cwd=driver.sandbox,
                stdin=subprocess.DEVNULL, start_new_session=True, **as_user,  # type: ignore[arg-type]
            )
        except OSError as exc:
            self._status(driver, pb.TASK_FAILED, f"cannot start command: {exc}",
                         pb.TaskStatus.REASON_CONTAINER_LAUNCH_FAILED)
            self._finish(driver)
            return
        self._status(driver, pb.TASK_RUNNING, f"pid {self.process.pid}")
        threading.Thread(target=self._wait, args=(driver,), name="command-wait", daemon=True).start()
        if task.HasField("health_check"):
            self.checker = HealthChecker(task.health_check, lambda r: self._health_changed(driver, r),
                                         lambda r: self._unhealthy(driver, r), cwd=driver.sandbox,
                                         run_probe=lambda check, cwd: probe(check, cwd, as_user))
            self.checker.start()

    def _health_changed(self, driver: ExecutorDriver, result: CheckResult) -> None:
        if self.done.is_set() or self.killed.is_set():
            return
        self.last_health = result.healthy
        self._status(driver, pb.TASK_RUNNING, result.message, pb.TaskStatus.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
                     healthy=result.healthy)

    def _unhealthy(self, driver: ExecutorDriver, result: CheckResult) -> None:
        assert self.task is not None
        self.kill_reason = f"health check failed {self.task.health_check.consecutive_failures} times: {result.message}"
        self.kill_task(driver, self.task.task_id)

    def _wait(self, driver: ExecutorDriver) -> None:
        assert self.process is not None
        returncode = self.process.wait()
        if self.checker is not None:
            self.checker.stop()
        if self.killed.is_set():
            message = self.kill_reason or f"killed (exit status {returncode})"
            self._status(driver, pb.TASK_KILLED, message,
                         pb.TaskStatus.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED if self.kill_reason else None,
                         healthy=False if self.kill_reason else self.last_health)
        else:
            state, message = describe_exit(returncode)
            self._status(driver, state, message, data=pack({"exit_status": returncode}))
        self._finish(driver)

    def _finish(self, driver: ExecutorDriver) -> None:
        self.done.set()
        driver.stop()

    def kill_task(self, driver: ExecutorDriver, task_id: pb.TaskID) -> None:  # type: ignore[override]
        if self.process is None or self.task is None or self.killed.is_set() or self.done.is_set():
            return
        self.killed.set()
        if self.framework is not None and has_capability(self.framework, pb.FrameworkInfo.Capability.TASK_KILLING_STATE):
            self._status(driver, pb.TASK_KILLING)
        grace = DEFAULT_GRACE_PERIOD
        if self.task.kill_policy.HasField("grace_period"):
            grace = self.task.kill_policy.grace_period.nanoseconds / 1e9
        self._signal(signal.SIGTERM)
        timer = threading.Timer(grace, self._signal, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def _signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def shutdown(self, driver: ExecutorDriver) -> None:  # type: ignore[override]
        if self.task is not None:
            self.kill_task(driver, self.task.task_id)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s command-executor %(levelname)s %(message)s")
    driver = ExecutorDriver(CommandExecutor())
    status = driver.run()
    return 0 if status.name == "STOPPED" else 1


if __name__ == "__main__":
    sys.exit(main())
