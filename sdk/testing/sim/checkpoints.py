"""What a simulated agent keeps on disk, kept in memory: the agent daemon's own
`Checkpointer` (the same layout, journal records and recovery reading) over a
`MemoryStore`."""
from __future__ import annotations

import errno
from pathlib import Path

from corral.agent.checkpoint import Checkpointer
from corral.engines.agent import RecoveredState


class MemoryStore:
    """A `corral.agent.store.Store` in memory: a tree of directories (each with its set
    of entries) and files (path -> bytes)."""

    def __init__(self) -> None:
        self.files: dict[Path, bytearray] = {}
        #: every directory -> the paths of its entries (files and directories)
        self.entries: dict[Path, set[Path]] = {}

    def _enter(self, path: Path) -> None:
        """Make `path` an entry of its directory, creating the missing directories."""
        parent = path.parent
        while parent not in self.entries:
            self.entries[parent] = {path}
            if parent == parent.parent:
                return
            path, parent = parent, parent.parent
        self.entries[parent].add(path)

    def write(self, path: Path, data: bytes) -> None:
        if path not in self.files:
            self._enter(path)
        self.files[path] = bytearray(data)

    def append(self, path: Path, data: bytes) -> None:
        if path not in self.files:
            self._enter(path)
            self.files[path] = bytearray()
        self.files[path].extend(data)

    def read(self, path: Path) -> bytes:
        try:
            return bytes(self.files[path])
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None

    def exists(self, path: Path) -> bool:
        return path in self.files or path in self.entries

    def subdirs(self, path: Path) -> list[Path]:
        return sorted(entry for entry in self.entries.get(path, ()) if entry in self.entries)

    def remove_tree(self, path: Path) -> None:
        if not self.exists(path):
            return
        pending = [path]
        while pending:
            entry = pending.pop()
            if self.files.pop(entry, None) is None:
                pending.extend(self.entries.pop(entry))
        self.entries[path.parent].discard(path)

    def remove_dir(self, path: Path) -> None:
        entries = self.entries.get(path)
        if entries is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(path))
        if entries:
            raise OSError(errno.ENOTEMPTY, "directory not empty", str(path))
        del self.entries[path]
        self.entries[path.parent].discard(path)

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
