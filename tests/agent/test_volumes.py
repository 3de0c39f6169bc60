"""Persistent volume directories and their links into sandboxes."""
from __future__ import annotations

import pytest

from corral.agent.volumes import VolumeError, Volumes


def test_volume_is_linked_into_the_sandbox_and_outlives_it(tmp_path) -> None:
    volumes = Volumes(tmp_path / "work")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    link = volumes.link(sandbox, "db", "vol-1", "data")
    (link / "file").write_text("kept")
    (sandbox / "data").unlink()
    again = tmp_path / "sandbox2"
    again.mkdir()
    assert (volumes.link(again, "db", "vol-1", "/data") / "file").read_text() == "kept"
    volumes.destroy("db", "vol-1")
    assert not volumes.path("db", "vol-1").exists()


@pytest.mark.parametrize("path", ["../escape", "a/../../b", "", "/"])
def test_container_paths_must_stay_in_the_sandbox(tmp_path, path) -> None:
    with pytest.raises(VolumeError, match="must stay in the sandbox"):
        Volumes(tmp_path).link(tmp_path, "db", "v", path)


def test_ids_and_roles_cannot_leave_the_volumes_root(tmp_path) -> None:
    volumes = Volumes(tmp_path)
    assert volumes.path("a/b", "../x").parent.parent == volumes.root
