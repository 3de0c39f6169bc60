"""Resource limits of containers: memory, sandbox disk and cpu shares.

The agent engine says what each container may use (`ContainerLimits`: the sum of its
executor's and its live tasks' resources; given at launch, then read from the engine at
every check, as tasks come and go); this module enforces it:

- **cgroup v2**, where the agent can use it (`detect_cgroup2`): a cgroup2 mount whose
  cgroup (the agent's own) has the memory controller enabled for its children and is
  writable. Each container gets `<that cgroup>/corral/<container id>`, which the executor
  enters before it execs (so none of its children escape), with `memory.max` = its
  memory, `memory.oom.group` = 1 (an OOM kills the whole container) and, when the cpu
  controller is there, `cpu.weight` from its cpus. The kernel enforces memory; an
  `oom_kill` in the cgroup's `memory.events` is reported as a memory limitation.
- **process-tree RSS** elsewhere (cgroup v1, or a cgroup2 without delegated
  controllers): every `interval` seconds one scan of /proc finds each container's
  processes (the executor, its descendants, and every process in their sessions, since
  executors start tasks in sessions of their own and daemonised children are reparented)
  and sums their RSS. Shared pages count once per process, so the sum over-estimates
  a little. Over the limit: the container is reported (`on_limit`) and killed with
  SIGKILL by the caller. cpu shares are not enforced there.
- **sandbox disk**, in both modes: every `disk_interval` seconds the sandbox's allocated
  blocks are summed (hard links once, symlinks not followed: persistent volumes are
  outside the sandbox and not counted); over the container's disk -> reported.

A limit of 0 (no `mem` or `disk` resources at all) is not enforced. A container is
reported at most once; `detach` returns what it was reported for, so that the exit can
carry the reason (REASON_CONTAINER_LIMITATION_MEMORY / _DISK).
"""
from __future__ import annotations

import enum
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from corral.engines.agent import ContainerLimits
from corral.protos import corral_pb2 as pb

log = logging.getLogger(__name__)

MB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: cgroup v2 cpu.weight for one cpu (the kernel's default weight is 100)
CPU_WEIGHT_PER_CPU = 100
CPU_WEIGHT_MIN, CPU_WEIGHT_MAX = 1, 10000


class LimitKind(enum.Enum):
    MEMORY = "memory"
    DISK = "disk"

    @property
    def reason(self) -> int:
        return {
            LimitKind.MEMORY: pb.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY,
            LimitKind.DISK: pb.TaskStatus.REASON_CONTAINER_LIMITATION_DISK,
        }[self]


@dataclass(frozen=True)
class Limitation:
    kind: LimitKind
    message: str

    @property
    def reason(self) -> int:
        return self.kind.reason


def _mb(n: float) -> str:
    return f"{n / MB:.1f} MB"


# ------------------------------------------------------------------ processes
@dataclass(frozen=True, slots=True)
class ProcessEntry:
    pid: int
    ppid: int
    session: int
    rss: int  # bytes


def parse_stat(text: str) -> ProcessEntry:
    """One /proc/<pid>/stat line (the command name may hold spaces and parentheses)."""
    pid = int(text[:text.index(" ")])
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5): ppid 4, session 6, rss 24 (pages)
    return ProcessEntry(pid, int(fields[1]), int(fields[3]), int(fields[21]) * PAGE_SIZE)


def scan_processes(proc: Path = Path("/proc")) -> dict[int, ProcessEntry]:
    table: dict[int, ProcessEntry] = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            try:
                with open(proc / entry / "stat") as f:
                    table[int(entry)] = parse_stat(f.read())
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return table


def container_processes(root: int, table: dict[int, ProcessEntry]) -> set[int]:
    """`root`, its descendants and every process sharing a session with any of them."""
    children: dict[int, list[int]] = {}
    sessions: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
        sessions.setdefault(p.session, []).append(p.pid)
    found: set[int] = set()
    seen_sessions: set[int] = set()
    todo = [root] if root in table else []
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
        session = table[pid].session
        if session not in seen_sessions:
            seen_sessions.add(session)
            todo.extend(sessions.get(session, ()))
    return found


def tree_rss(root: int, table: dict[int, ProcessEntry]) -> int:
    """Bytes resident in the container rooted at `root` (0 if it is gone)."""
    return sum(table[pid].rss for pid in container_processes(root, table))


# ------------------------------------------------------------------ disk
def disk_usage(path: Path) -> int:
    """Bytes allocated to the files under `path` (like `du -s`), not following symlinks."""
    total = 0
    seen: set[tuple[int, int]] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                todo.append(Path(entry.path))
    return total


# ------------------------------------------------------------------ cgroup v2
@dataclass(frozen=True)
class Cgroup2:
    """A cgroup2 directory the agent may create container cgroups under."""

    path: Path
    cpu: bool  # the cpu controller is enabled for children too


def own_cgroup2_path(proc_self_cgroup: str) -> str | None:
    """The unified-hierarchy path in /proc/self/cgroup (the `0::` line)."""
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def detect_cgroup2(mounts: str, self_cgroup: str, root_prefix: Path = Path("/")) -> Cgroup2 | None:
    """The agent's cgroup2 directory if it can hold limited containers: a cgroup2 mount,
    memory in the cgroup's `cgroup.subtree_control` (enabled for children) and the
    directory writable. `root_prefix` re-roots the mount points (for tests)."""
    relative = own_cgroup2_path(self_cgroup)
    if relative is None:
        return None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[2] != "cgroup2":
            continue
        mount = root_prefix / parts[1].lstrip("/")
        base = mount / relative.lstrip("/")
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
        except OSError:
            continue
        if "memory" in enabled and os.access(base, os.W_OK):
            return Cgroup2(base, "cpu" in enabled)
    return None


def detect_host_cgroup2() -> Cgroup2 | None:
    try:
        mounts = Path("/proc/mounts").read_text()
        self_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    return detect_cgroup2(mounts, self_cgroup)


def cpu_weight(cpus: float) -> int:
    return max(CPU_WEIGHT_MIN, min(CPU_WEIGHT_MAX, round(cpus * CPU_WEIGHT_PER_CPU)))


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class CgroupContainers:
    """One cgroup per container under `<base>/corral`."""

    def __init__(self, base: Cgroup2) -> None:
        self.base = base
        self.root = base.path / "corral"
        self.root.mkdir(exist_ok=True)
        controllers = "+memory +cpu" if base.cpu else "+memory"
        (self.root / "cgroup.subtree_control").write_text(controllers)

    def path(self, container_id: str) -> Path:
        return self.root / _SAFE.sub("_", container_id)

    def create(self, container_id: str) -> list[str]:
        """Make the container's cgroup; returns the argv prefix that moves the executor
        into it before it execs."""
        path = self.path(container_id)
        path.mkdir(exist_ok=True)
        (path / "memory.oom.group").write_text("1")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(path / "cgroup.procs")]

    def set_limits(self, container_id: str, limits: ContainerLimits) -> None:
        path = self.path(container_id)
        try:
            (path / "memory.max").write_text(str(int(limits.mem_mb * MB)) if limits.mem_mb > 0 else "max")
            if self.base.cpu and limits.cpus > 0:
                (path / "cpu.weight").write_text(str(cpu_weight(limits.cpus)))
        except OSError as exc:  # e.g. a container adopted after a restart, started without a cgroup
            log.warning("cannot set the cgroup limits of container %s: %s", container_id, exc)

    def oom_killed(self, container_id: str) -> bool:
        try:
            events = (self.path(container_id) / "memory.events").read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in events.splitlines() if line.strip())
        return int(counts.get("oom_kill", "0")) > 0

    def remove(self, container_id: str) -> None:
        try:
            self.path(container_id).rmdir()
        except OSError as exc:
            log.warning("cannot remove the cgroup of container %s: %s", container_id, exc)


# ------------------------------------------------------------------ the enforcer
@dataclass
class _Watched:
    pid: int
    sandbox: Path | None
    limits: ContainerLimits = field(default_factory=ContainerLimits)
    limitation: Limitation | None = None


LimitCallback = Callable[[str, Limitation], None]
LimitsSource = Callable[[], dict[str, ContainerLimits]]


class LimitEnforcer:
    """Watches containers (from `attach` to `detach`) against their limits, as
    `current_limits()` gives them at each check; calls `on_limit(container_id,
    limitation)` once per container, from its own thread."""

    def __init__(self, on_limit: LimitCallback, current_limits: LimitsSource, *, interval: float = 0.25,
                 disk_interval: float = 5.0, cgroups: CgroupContainers | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_limit = on_limit
        self._current_limits = current_limits
        self.interval = interval
        self.disk_interval = disk_interval
        self.cgroups = cgroups
        self._clock = clock
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_disk_check = 0.0

    def prepare(self, container_id: str) -> list[str]:
        """Before launch: the argv prefix that puts the executor under its limits."""
        return self.cgroups.create(container_id) if self.cgroups is not None else []

    def attach(self, container_id: str, pid: int, sandbox: Path | None, limits: ContainerLimits) -> None:
        """Watch a started container (`pid` leads its session) under `limits`."""
        with self._lock:
            self._watched[container_id] = _Watched(pid, sandbox, limits)
        if self.cgroups is not None:
            self.cgroups.set_limits(container_id, limits)

    def _refresh(self) -> None:
        """Take the containers' current limits (cgroup files are written when they change)."""
        current = self._current_limits()
        changed = []
        with self._lock:
            for cid, w in self._watched.items():
                limits = current.get(cid)
                if limits is not None and limits != w.limits:
                    w.limits = limits
                    changed.append((cid, limits))
        if self.cgroups is not None:
            for cid, limits in changed:
                self.cgroups.set_limits(cid, limits)

    def detach(self, container_id: str) -> Limitation | None:
        """The container exited: stop watching it; what it was over, if anything."""
        with self._lock:
            watched = self._watched.pop(container_id, None)
        limitation = watched.limitation if watched is not None else None
        if self.cgroups is not None:
            if limitation is None and self.cgroups.oom_killed(container_id):
                mem = watched.limits.mem_mb if watched is not None else 0
                limitation = Limitation(LimitKind.MEMORY, f"memory limit {mem:g} MB reached: the kernel killed "
                                                          "a process of the container (out of memory)")
            self.cgroups.remove(container_id)
        return limitation

    # -- checks ------------------------------------------------------------------
    def check(self, table: dict[int, ProcessEntry] | None = None) -> list[tuple[str, Limitation]]:
        """One round: memory (RSS mode) always, disk when due. Returns (and reports)
        the containers found over a limit."""
        now = self._clock()
        self._refresh()
        with self._lock:
            watched = [(cid, w) for cid, w in self._watched.items() if w.limitation is None]
        found: list[tuple[str, Limitation]] = []
        if self.cgroups is None and any(w.limits.mem_mb > 0 for _, w in watched):
            if table is None:
                table = scan_processes()
            for cid, w in watched:
                if w.limits.mem_mb > 0:
                    used = tree_rss(w.pid, table)
                    if used > w.limits.mem_mb * MB:
                        found.append((cid, Limitation(LimitKind.MEMORY, (
                            f"memory limit exceeded: the container used {_mb(used)} (resident, all of its processes) "
                            f"of its {w.limits.mem_mb:g} MB"))))
        if now >= self._next_disk_check:
            self._next_disk_check = now + self.disk_interval
            over = {cid for cid, _ in found}
            for cid, w in watched:
                if cid not in over and w.limits.disk_mb > 0 and w.sandbox is not None:
                    used = disk_usage(w.sandbox)
                    if used > w.limits.disk_mb * MB:
                        found.append((cid, Limitation(LimitKind.DISK, (
                            f"disk limit exceeded: the sandbox uses {_mb(used)} of its {w.limits.disk_mb:g} MB"))))
        reported = []
        for cid, limitation in found:
            with self._lock:
                w = self._watched.get(cid)
                if w is None or w.limitation is not None:
                    continue
                w.limitation = limitation
            reported.append((cid, limitation))
            log.warning("container %s: %s", cid, limitation.message)
            self._on_limit(cid, limitation)
        return reported

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="limits", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("checking container limits failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


def limits_enforcer(on_limit: LimitCallback, current_limits: LimitsSource, interval: float, disk_interval: float,
                    cgroup: Cgroup2 | None = None) -> LimitEnforcer:
    """An enforcer using cgroup v2 when `cgroup` is given and usable, else RSS polling."""
    cgroups = None
    if cgroup is not None:
        try:
            cgroups = CgroupContainers(cgroup)
        except OSError as exc:
            log.warning("cgroup v2 at %s is not usable (%s): limiting memory by polling RSS instead", cgroup.path, exc)
    enforcer = LimitEnforcer(on_limit, current_limits, interval=interval, disk_interval=disk_interval, cgroups=cgroups)
    log.info("container limits: %s (memory checked every %gs, sandbox disk every %gs)",
             f"cgroup v2 at {cgroups.root}" if cgroups else "process-tree RSS", interval, disk_interval)
    return enforcer

