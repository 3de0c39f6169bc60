"""Where an agent's checkpoints are kept: paths and bytes, nothing of what they mean.

`FileStore` is the files themselves, written crash-safely: a whole file goes to a
temporary file in the same directory, is fsynced and renamed over the target, then its
directory is fsynced; an append is fsynced, and so is the directory that a new file
appeared in; every new directory is made durable in its parent. The simulator keeps an
agent's checkpoints in memory behind the same interface (`Store`), so the one
`corral.agent.checkpoint.Checkpointer` lays out, writes and recovers both.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol


class Store(Protocol):
    def write(self, path: Path, data: bytes) -> None:
        """Replace the file at `path` with `data` as one step (creating its directories)."""

    def append(self, path: Path, data: bytes) -> None:
        """Append `data` to the file at `path` (created, with its directories, if need be)."""

    def read(self, path: Path) -> bytes:
        """The file's bytes; FileNotFoundError when there is none, OSError when unreadable."""

    def exists(self, path: Path) -> bool:
        """A file or a directory is at `path`."""

    def subdirs(self, path: Path) -> list[Path]:
        """The directories in the directory `path`, sorted ([] when it is none)."""

    def remove_tree(self, path: Path) -> None:
        """Remove `path` and everything below it (nothing when it is not there)."""

    def remove_dir(self, path: Path) -> None:
        """Remove the empty directory `path`; OSError when it is not there or not empty."""

    def truncate(self, path: Path, size: int) -> None:
        """Cut the file at `path` to its first `size` bytes."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(path: Path) -> None:
    """Create `path` and its missing parents, making each new entry durable."""
    if path.is_dir():
        return
    _ensure_dir(path.parent)
    path.mkdir(exist_ok=True)
    _fsync_dir(path.parent)


class FileStore:
    """The files under a real directory, written crash-safely (see the module's docstring)."""

    def write(self, path: Path, data: bytes) -> None:
        _ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def append(self, path: Path, data: bytes) -> None:
        _ensure_dir(path.parent)
        created = not path.exists()
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if created:
            _fsync_dir(path.parent)

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def exists(self, path: Path) -> bool:
        return path.exists()

    def subdirs(self, path: Path) -> list[Path]:
        if not path.is_dir():
            return []
        return sorted(p for p in path.iterdir() if p.is_dir())

    def remove_tree(self, path: Path) -> None:
        if path.exists():
            shutil.rmtree(path)
            _fsync_dir(path.parent)

    def remove_dir(self, path: Path) -> None:
        path.rmdir()

    def truncate(self, path: Path, size: int) -> None:
        with open(path, "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())


#: the real files (what every `Checkpointer` uses unless given another store)
FILES = FileStore()
