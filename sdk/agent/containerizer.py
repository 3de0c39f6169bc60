"""Executor processes: each container is one OS process (and its children) in its own
session and process group, started in a fresh sandbox directory with stdout and stderr
captured to files there. Exits are reported through a callback, from a waiter thread.

Killing a container signals its process group and every descendant of the executor
(found through /proc), since executors may start tasks in sessions of their own: a
SIGKILLed executor must not leave its tasks behind. When the executor exits, the
container ends: what is left of it (processes in the executor's session, and the
descendants seen when a kill began, with their sessions) is SIGKILLed, as Mesos
destroys a container whose executor terminated.

After an agent restart, executors that survived are no longer the agent's children:
`adopt` watches such a process by pid (a pidfd, polled with select, or /proc polling
where pidfds are missing) and reports its exit the same way, with an unknown status.

Limits are not enforced here (see corral.agent.limits): `launch` takes the argv prefix
that puts the executor under them, and `kill` is how a container over a limit is ended.

Users (`launch(user=...)`, when the agent switches users): the sandbox is made the
user's, and the executor drops to the user's uid, gid and groups (util-linux's
`setpriv`, after the limits' prefix has put it in its cgroup) with HOME, USER and
LOGNAME set; a user the machine does not know fails the launch, naming it. corral's own
command executor (`task_user_only`) stays the agent's user and is told the user in
TASK_USER_ENV: it runs its task's command as that user.
"""
from __future__ import annotations

import logging
import os
import pwd
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from corral.agent.checkpoint import ProcessStamp, process_stamp
from corral.agent.limits import scan_processes
from corral.executors import TASK_USER_ENV
from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)

ExitCallback = Callable[["Container", int, str], None]


class LaunchError(RuntimeError):
    """The executor process could not be started."""


#: exit status reported for an adopted process (not our child: its status is unknowable)
UNKNOWN_STATUS = -1
#: /proc polling interval for adopted processes when pidfds are not available
PROC_POLL_INTERVAL = 0.2


@dataclass
class Container:
    id: str
    #: process group id (= pid: executors lead their own session)
    pid: int
    sandbox: Path | None
    #: our child (None for a process adopted after an agent restart)
    process: subprocess.Popen[bytes] | None = None
    killing: bool = False
    exited: threading.Event = field(default_factory=threading.Event)
    #: set once what the executor left behind is killed too (what `wait_all` waits for)
    ended: threading.Event = field(default_factory=threading.Event)
    #: the executor's descendants when the kill began (they outlive it once reparented)
    descendants: list[ProcessStamp] = field(default_factory=list)


def executor_argv(command: pb.CommandInfo) -> list[str]:
    if command.shell:
        return ["/bin/sh", "-c", command.value]
    return list(command.arguments) or [command.value]


def descendants(pid: int) -> list[ProcessStamp]:
    """Every live process below `pid` in the process tree."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out: list[ProcessStamp] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        stamp = process_stamp(child)
        if stamp is not None:
            out.append(stamp)
        todo.extend(children.get(child, []))
    return out


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

    def launch(self, container_id: str, framework_id: str, executor: pb.ExecutorInfo, environment: dict[str, str],
               argv_prefix: list[str] | None = None, fetched: bool = False, user: str | None = None,
               task_user_only: bool = False) -> Container:
        """Start the executor in a new sandbox (`fetched`: made already, holding the
        command's fetched URIs); `argv_prefix` runs before it (and execs it); `user`: the
        user it runs as (None: the agent's), or, `task_user_only`, the user it runs its
        task's command as."""
        sandbox = self.sandbox_path(framework_id, executor.executor_id.value, container_id)
        env = dict(os.environ)
        env.update(environment)
        for var in executor.command.environment.variables:
            env[var.name] = var.value
        env["CORRAL_SANDBOX"] = str(sandbox)
        argv = executor_argv(executor.command)
        account = None
        if user is not None:
            try:
                account = pwd.getpwnam(user)
            except KeyError:
                raise LaunchError(f"cannot start executor {executor.executor_id.value!r} as user {user!r}: "
                                  f"no such user on this agent") from None
            if task_user_only:
                env[TASK_USER_ENV] = user
            else:
                env.update(HOME=account.pw_dir, USER=user, LOGNAME=user)
                argv = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--",
                        *argv]
        try:
            sandbox.mkdir(parents=True, exist_ok=fetched)
            with open(sandbox / "stdout", "wb") as out, open(sandbox / "stderr", "wb") as err:
                if account is not None:  # the sandbox and its files are the user's
                    for path in (sandbox, sandbox / "stdout", sandbox / "stderr"):
                        os.chown(path, account.pw_uid, account.pw_gid)
                process = subprocess.Popen(
                    [*(argv_prefix or []), *argv], env=env, cwd=sandbox, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True,
                )
        except OSError as exc:
            raise LaunchError(f"cannot start executor {executor.executor_id.value!r}: {exc}") from exc
        container = Container(container_id, process.pid, sandbox, process)
        with self._lock:
            self.containers[container_id] = container
        threading.Thread(target=self._wait, args=(container,), name=f"wait-{container_id}", daemon=True).start()
        log.info("launched container %s (pid %d) in %s", container_id, process.pid, sandbox)
        return container

    def sandbox_of(self, container_id: str) -> Path | None:
        with self._lock:
            container = self.containers.get(container_id)
        return container.sandbox if container is not None else None

    def stamp(self, container_id: str) -> ProcessStamp | None:
        """The identity of the container's process (pid and start time), if it runs."""
        with self._lock:
            container = self.containers.get(container_id)
        return process_stamp(container.pid) if container is not None else None

    def live_sandboxes(self) -> set[Path]:
        with self._lock:
            return {c.sandbox for c in self.containers.values() if c.sandbox is not None}

    def adopt(self, container_id: str, stamp: ProcessStamp, sandbox: Path | None = None) -> bool:
        """Watch a running executor left by a previous agent; False if it is gone."""
        if process_stamp(stamp.pid) != stamp:
            return False
        container = Container(container_id, stamp.pid, sandbox)
        with self._lock:
            self.containers[container_id] = container
        threading.Thread(target=self._watch, args=(container, stamp), name=f"watch-{container_id}", daemon=True).start()
        log.info("recovered container %s (pid %d)", container_id, stamp.pid)
        return True

    def _wait(self, container: Container) -> None:
        assert container.process is not None
        returncode = container.process.wait()
        self._exited(container, returncode, describe_status(returncode))

    def _watch(self, container: Container, stamp: ProcessStamp) -> None:
        try:
            pidfd = os.pidfd_open(stamp.pid)
        except OSError:
            pidfd = -1
        if pidfd >= 0 and process_stamp(stamp.pid) == stamp:  # the fd is of our process, not a reused pid
            try:
                select.select([pidfd], [], [])
            finally:
                os.close(pidfd)
        else:
            if pidfd >= 0:
                os.close(pidfd)
            while process_stamp(stamp.pid) == stamp:
                time.sleep(PROC_POLL_INTERVAL)
        self._exited(container, UNKNOWN_STATUS, f"recovered executor (pid {stamp.pid}) exited")

    def _exited(self, container: Container, status: int, message: str) -> None:
        container.exited.set()
        self._kill_leftovers(container)
        container.ended.set()
        with self._lock:
            self.containers.pop(container.id, None)
        self._on_exit(container, status, message)

    @staticmethod
    def _kill_leftovers(container: Container) -> None:
        known = [s for s in container.descendants if process_stamp(s.pid) == s]
        sessions = {container.pid}
        for stamp in known:
            try:
                sessions.add(os.getsid(stamp.pid))
            except ProcessLookupError:
                continue
        left = {p.pid for p in scan_processes().values() if p.session in sessions} | {s.pid for s in known}
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            log.info("container %s: killed %d process(es) left behind by its executor", container.id, len(left))

    def kill(self, container_id: str, grace: float) -> None:
        """SIGTERM the container's process group; SIGKILL it after `grace` seconds."""
        with self._lock:
            container = self.containers.get(container_id)
        if container is None or container.killing:
            return
        container.killing = True
        container.descendants = descendants(container.pid)
        self._signal(container, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        if grace > 0:
            timer = threading.Timer(grace, self._signal, args=(container, signal.SIGKILL))
            timer.daemon = True
            timer.start()

    def _signal(self, container: Container, sig: int) -> None:
        """SIGTERM: the executor's process group (it stops its tasks itself). SIGKILL:
        the group and every descendant, past and present."""
        if not container.exited.is_set() and (container.process is None or container.process.poll() is None):
            # on SIGTERM too: an executor that dies of it must not leave tasks in other sessions behind
            container.descendants.extend(descendants(container.pid))
            try:
                os.killpg(container.pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL:
            for stamp in container.descendants:
                if process_stamp(stamp.pid) == stamp:
                    try:
                        os.kill(stamp.pid, sig)
                    except ProcessLookupError:
                        pass

    def kill_all(self, grace: float) -> None:
        with self._lock:
            ids = list(self.containers)
        for cid in ids:
            self.kill(cid, grace)

    def wait_all(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            containers = list(self.containers.values())
        return all(c.ended.wait(max(0.0, deadline - time.monotonic())) for c in containers)
