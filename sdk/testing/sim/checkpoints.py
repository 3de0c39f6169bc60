"""What a simulated agent keeps on disk, kept in memory: the agent daemon's own
`Checkpointer` (the same layout, journal records and recovery reading) over a
`MemoryStore`."""
from __future__ import annotations

import errno
from pathlib import Path

from corral.agent.checkpoint import Checkpointer
from corral.engines.agent import RecoveredState


class MemoryStore:
    """A `corral.agent.store.Store` in memory: files (path -> bytes) and directories."""

    def __init__(self) -> None:
        self.files: dict[Path, bytearray] = {}
        self.dirs: set[Path] = set()

    def _make_parents(self, path: Path) -> None:
        for parent in path.parents:
            if parent in self.dirs:
                return
            self.dirs.add(parent)

    def write(self, path: Path, data: bytes) -> None:
        self._make_parents(path)
        self.files[path] = bytearray(data)

    def append(self, path: Path, data: bytes) -> None:
        self._make_parents(path)
        self.files.setdefault(path, bytearray()).extend(data)

    def read(self, path: Path) -> bytes:
        try:
            return bytes(self.files[path])
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None

    def exists(self, path: Path) -> bool:
        return path in self.files or path in self.dirs

    def subdirs(self, path: Path) -> list[Path]:
        return sorted(d for d in self.dirs if d.parent == path)

    def remove_tree(self, path: Path) -> None:
        self.files = {p: data for p, data in self.files.items() if p != path and path not in p.parents}
        self.dirs = {d for d in self.dirs if d != path and path not in d.parents}

    def remove_dir(self, path: Path) -> None:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(path))
        if any(p.parent == path for p in (*self.files, *self.dirs)):
            raise OSError(errno.ENOTEMPTY, "directory not empty", str(path))
        self.dirs.discard(path)

    def truncate(self, path: Path, size: int) -> None:
        del self.files[path][size:]


class SimCheckpoints(Checkpointer):
    """One simulated agent's checkpoint directory, in memory. The cluster performs the
    engine's checkpoint actions through `performers()`, as the daemon does."""

    def __init__(self) -> None:
        super().__init__(Path("/sim-agent"), MemoryStore())

    def recovered(self) -> RecoveredState | None:
        """What a restarted agent reads; None when it never checkpointed (a fresh agent)."""
        return self.read() if self.exists() else None
