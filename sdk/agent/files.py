"""Sandbox file browsing for the agent's `/files/browse` and `/files/read` endpoints.

Every path is resolved (symlinks included) and must stay inside the agent's sandboxes
root; anything else is refused, whatever `..`, absolute paths or links it uses.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: most bytes one /files/read returns
MAX_READ = 1024 * 1024


class FileAccessError(Exception):
    """A request the file endpoints refuse; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SandboxFiles:
    root: Path

    def resolve(self, path: str) -> Path:
        """The real path of `path` (relative to the sandboxes root, or absolute under it)."""
        if not path:
            raise FileAccessError(400, "missing 'path'")
        if "\x00" in path:
            raise FileAccessError(400, "invalid 'path': contains a NUL byte")
        root = self.root.resolve()
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = root / candidate
        real = Path(os.path.realpath(candidate))
        if real != root and root not in real.parents:
            raise FileAccessError(403, f"path {path!r} is outside the sandboxes")
        if not real.exists():
            raise FileAccessError(404, f"no such file or directory: {path!r}")
        return real

    def framework_of(self, path: str) -> str | None:
        """The framework whose sandboxes `path` is in (None: the sandboxes root)."""
        parts = self.resolve(path).relative_to(self.root.resolve()).parts
        return parts[0] if parts else None

    def browse(self, path: str) -> list[dict[str, Any]]:
        real = self.resolve(path)
        if not real.is_dir():
            raise FileAccessError(400, f"{path!r} is not a directory")
        entries = []
        for entry in sorted(real.iterdir()):
            info = entry.lstat()
            entries.append({
                "path": str(entry),
                "name": entry.name,
                "size": info.st_size,
                "mode": stat.filemode(info.st_mode),
                "mtime": info.st_mtime,
                "nlink": info.st_nlink,
            })
        return entries

    def read(self, path: str, offset: int = -1, length: int = MAX_READ) -> dict[str, Any]:
        """Mesos' /files/read: offset -1 answers just the size; otherwise up to `length`
        bytes from `offset` (text, undecodable bytes replaced), and how many bytes that
        was (`length`: the next read starts at offset + length)."""
        real = self.resolve(path)
        if not real.is_file():
            raise FileAccessError(400, f"{path!r} is not a regular file")
        size = real.stat().st_size
        if offset < 0:
            return {"offset": size, "data": "", "length": 0}
        if length < 0:
            raise FileAccessError(400, f"invalid 'length' {length}: must not be negative")
        with open(real, "rb") as f:
            f.seek(min(offset, size))
            data = f.read(min(length, MAX_READ))
        return {"offset": min(offset, size), "data": data.decode("utf-8", errors="replace"), "length": len(data)}


def int_param(query: dict[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise FileAccessError(400, f"invalid '{name}' {text!r}: not a whole number") from None
