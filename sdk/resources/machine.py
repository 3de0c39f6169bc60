"""What this machine offers when the operator names no resources (Mesos' defaults)."""
from __future__ import annotations

import os
import shutil

from corral.resources.model import Resources
from corral.resources.values import ResourceError, UNRESERVED, ValueKind, _Items, _MILLI, _simple_key

_MIB = 1024 * 1024


DEFAULT_PORTS: tuple[int, int] = (31000, 32000)
"""The ports an agent offers by default (Mesos: `[31000-32000]`)."""
MEM_KEEP_MB = 1024
"""Memory left to the system: at most 1 GB (Mesos)."""
DISK_KEEP_MB = 5 * 1024
"""Disk left to the system: at most 5 GB (Mesos)."""


def leave_for_system(total_mb: int, keep_mb: int) -> int:
    """What an agent offers out of `total_mb`: it leaves `min(keep_mb, total_mb / 2)`.

    This is Mesos' rule: with at least twice `keep_mb`, offer all but `keep_mb`;
    otherwise offer half.
    """
    return total_mb - min(keep_mb, total_mb // 2)


def _total_memory_mb() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024  # kB
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // _MIB


def detect_resources(work_dir: str) -> Resources:
    """What this machine offers when the operator names no resources (Mesos' defaults).

    - cpus: `os.cpu_count()`.
    - mem (MB): total memory (`/proc/meminfo` MemTotal) minus `min(1 GB, total / 2)`.
    - disk (MB): free space of the filesystem holding `work_dir` minus
      `min(5 GB, free / 2)`. (Mesos measures the filesystem's size; corral measures what
      is free, so an agent never offers space other data already uses.)
    - ports: `[31000-32000]`.

    Raises `ResourceError` when `work_dir` cannot be measured (e.g. it does not exist).
    """
    try:
        free_mb = shutil.disk_usage(work_dir).free // _MIB
    except OSError as err:
        raise ResourceError(
            f"cannot measure free disk under work dir {work_dir!r}: {err.strerror}"
        ) from None
    items: _Items = {}
    quantities = (
        ("cpus", (os.cpu_count() or 1) * _MILLI),
        ("mem", leave_for_system(_total_memory_mb(), MEM_KEEP_MB) * _MILLI),
        ("disk", leave_for_system(free_mb, DISK_KEEP_MB) * _MILLI),
    )
    for name, milli in quantities:
        if milli:
            items[_simple_key(name, ValueKind.SCALAR, UNRESERVED)] = milli
    items[_simple_key("ports", ValueKind.RANGES, UNRESERVED)] = (DEFAULT_PORTS,)
    return Resources._wrap(items)
