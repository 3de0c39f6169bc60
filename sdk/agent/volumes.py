"""Persistent volumes on the agent: one directory per volume under the work dir
(`volumes/roles/<role>/<persistence id>`), which outlives the tasks that use it and is
linked into the sandbox of each container whose task names it, at the volume's
container path (relative to the sandbox)."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import quote

log = logging.getLogger(__name__)


class VolumeError(ValueError):
    """A volume that cannot be created or linked; the message names it."""


class Volumes:
    def __init__(self, work_dir: Path) -> None:
        self.root = Path(work_dir) / "volumes" / "roles"

    def path(self, role: str, persistence_id: str) -> Path:
        # ids and roles are percent-encoded so that neither `/` nor `..` leaves the root
        return self.root / quote(role, safe="") / quote(persistence_id, safe="")

    def create(self, role: str, persistence_id: str) -> Path:
        path = self.path(role, persistence_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def destroy(self, role: str, persistence_id: str) -> None:
        shutil.rmtree(self.path(role, persistence_id), ignore_errors=True)

    def link(self, sandbox: Path, role: str, persistence_id: str, container_path: str) -> Path:
        """Make the volume appear at `container_path` inside `sandbox`."""
        relative = PurePosixPath(container_path.lstrip("/"))
        if not relative.parts or ".." in relative.parts:
            raise VolumeError(f"volume {persistence_id!r}: container path {container_path!r} must stay in the sandbox")
        target = self.create(role, persistence_id)  # after an agent restart it may be linked anew
        where = sandbox / relative
        where.parent.mkdir(parents=True, exist_ok=True)
        if where.is_symlink() or where.exists():
            raise VolumeError(f"volume {persistence_id!r}: {container_path!r} already exists in the sandbox")
        os.symlink(target, where)
        return where
