"""Garbage collection of completed sandboxes.

`SandboxGC` is the schedule alone (no I/O, an injected clock): a sandbox is scheduled
when its container exits and is due `delay` seconds later; under disk pressure (the
work dir's filesystem fuller than `1 - headroom`) the oldest completed sandboxes go
first, one at a time, until the pressure is gone or none is left. The daemon drives it
(`collect`, with the filesystem usage and the removal as callables) and never schedules
the sandbox of a live container.

`remove_sandbox` deletes one container's sandbox: only below the sandboxes root,
without following symlinks (persistent volumes are linked into sandboxes and live
under `<work_dir>/volumes`: the links go, the volumes stay), then the framework and
executor directories left empty.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)

#: Mesos defaults: one week; keep 10% of the work dir's filesystem free
DEFAULT_GC_DELAY = 7 * 24 * 3600.0
DEFAULT_GC_DISK_HEADROOM = 0.1


class SandboxGC:
    def __init__(self, delay: float, headroom: float, clock: Callable[[], float]) -> None:
        if delay < 0:
            raise ValueError(f"gc delay {delay!r} must not be negative")
        if not 0.0 <= headroom <= 1.0:
            raise ValueError(f"gc disk headroom {headroom!r} must be between 0 and 1")
        self.delay = delay
        self.headroom = headroom
        self._clock = clock
        #: sandbox -> when its container completed
        self._completed: dict[Path, float] = {}

    def schedule(self, sandbox: Path, completed_at: float | None = None) -> None:
        self._completed[sandbox] = self._clock() if completed_at is None else completed_at

    def unschedule(self, sandbox: Path) -> None:
        self._completed.pop(sandbox, None)

    @property
    def scheduled(self) -> list[Path]:
        """Oldest first."""
        return sorted(self._completed, key=self._completed.__getitem__)

    def next_due(self) -> float | None:
        return min(self._completed.values()) + self.delay if self._completed else None

    def collect(self, usage: Callable[[], float], remove: Callable[[Path], None]) -> list[Path]:
        """Remove what is due, then, while `usage()` (the fraction of the filesystem in
        use) is above `1 - headroom`, the oldest remaining sandboxes. Returns the
        sandboxes removed, in order. A removal that fails (OSError, or ValueError for a
        sandbox that must not go) is logged and not retried."""
        now = self._clock()
        removed: list[Path] = []
        for sandbox in self.scheduled:
            if self._completed[sandbox] + self.delay <= now:
                self._remove(sandbox, remove, removed)
        threshold = 1.0 - self.headroom
        while self._completed and usage() > threshold:
            self._remove(self.scheduled[0], remove, removed)
        return removed

    def _remove(self, sandbox: Path, remove: Callable[[Path], None], removed: list[Path]) -> None:
        del self._completed[sandbox]
        try:
            remove(sandbox)
        except (OSError, ValueError) as exc:
            log.error("cannot garbage-collect sandbox %s: %s", sandbox, exc)
            return
        removed.append(sandbox)


def filesystem_usage(path: Path) -> float:
    """The fraction of the filesystem holding `path` in use (as `df` counts it)."""
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    total = used + st.f_bavail
    return used / total if total else 0.0


def remove_sandbox(root: Path, sandbox: Path) -> None:
    """Delete `sandbox` (which must lie below `root`) and its parents left empty."""
    root, sandbox = Path(os.path.abspath(root)), Path(os.path.abspath(sandbox))
    if root not in sandbox.parents:
        raise ValueError(f"{sandbox} is not below the sandboxes root {root}")
    if sandbox.is_symlink():
        raise ValueError(f"{sandbox} is a symlink, not a sandbox")
    shutil.rmtree(sandbox)
    parent = sandbox.parent
    while parent != root:
        try:
            parent.rmdir()
        except OSError:
            break  # not empty: other containers of that executor or framework
        parent = parent.parent


def iter_sandboxes(root: Path) -> Iterable[Path]:
    """Every container sandbox under the sandboxes root (`<framework>/<executor>/<container>`)."""
    for framework in _subdirs(root):
        for executor in _subdirs(framework):
            yield from _subdirs(executor)


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
