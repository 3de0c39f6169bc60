"""corral.agent.gc: the sandbox GC schedule under a fake clock (delay, oldest first
under disk pressure, failed removals), and sandbox removal on real directories (only
below the root, volumes kept, empty parents pruned)."""
from __future__ import annotations

from pathlib import Path

import pytest

from corral.agent.gc import SandboxGC, filesystem_usage, iter_sandboxes, remove_sandbox


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_pressure() -> float:
    return 0.0


def test_sandboxes_are_removed_once_their_delay_has_passed_oldest_first() -> None:
    clock = Clock()
    gc = SandboxGC(delay=60.0, headroom=0.1, clock=clock)
    removed: list[Path] = []
    gc.schedule(Path("b"))
    clock.now += 10
    gc.schedule(Path("c"))
    gc.schedule(Path("a"), completed_at=clock.now - 30)  # e.g. found at start, aged by its mtime
    assert gc.scheduled == [Path("a"), Path("b"), Path("c")]
    assert gc.next_due() == clock.now - 30 + 60
    clock.now += 29
    assert gc.collect(no_pressure, removed.append) == [] and removed == []
    clock.now += 1  # a: completed 30 s before b, 60 s ago now
    assert gc.collect(no_pressure, removed.append) == [Path("a")]
    clock.now += 20
    assert gc.collect(no_pressure, removed.append) == [Path("b")]
    assert gc.scheduled == [Path("c")] and gc.next_due() == 1010.0 + 60
    gc.unschedule(Path("c"))
    assert gc.next_due() is None
    clock.now += 1e6
    assert gc.collect(no_pressure, removed.append) == [] and removed == [Path("a"), Path("b")]


def test_disk_pressure_removes_the_oldest_until_the_headroom_is_back() -> None:
    clock = Clock()
    gc = SandboxGC(delay=7 * 86400, headroom=0.1, clock=clock)
    usage = {Path("s1"): 0.03, Path("s2"): 0.02, Path("s3"): 0.02, Path("s4"): 0.01}
    for i, sandbox in enumerate(usage):
        gc.schedule(sandbox, completed_at=clock.now + i)
    disk = [0.96]

    def remove(sandbox: Path) -> None:
        disk[0] -= usage[sandbox]

    assert gc.collect(lambda: disk[0], remove) == [Path("s1"), Path("s2"), Path("s3")]  # 0.96 -> 0.89
    assert gc.scheduled == [Path("s4")]
    assert gc.collect(lambda: disk[0], remove) == []  # below 0.9: the rest waits for its delay


def test_pressure_with_nothing_left_to_remove_stops() -> None:
    gc = SandboxGC(delay=100, headroom=0.5, clock=Clock())
    gc.schedule(Path("only"))
    assert gc.collect(lambda: 0.99, lambda p: None) == [Path("only")]
    assert gc.collect(lambda: 0.99, lambda p: None) == []


@pytest.mark.parametrize("error", [OSError("busy"), ValueError("a live container's sandbox")])
def test_a_failed_removal_is_dropped_and_not_retried(error: Exception) -> None:
    clock = Clock()
    gc = SandboxGC(delay=1, headroom=0.1, clock=clock)
    gc.schedule(Path("bad"))
    gc.schedule(Path("good"), completed_at=clock.now + 0.5)
    clock.now += 2
    attempts: list[Path] = []

    def remove(sandbox: Path) -> None:
        attempts.append(sandbox)
        if sandbox == Path("bad"):
            raise error

    assert gc.collect(no_pressure, remove) == [Path("good")]
    assert attempts == [Path("bad"), Path("good")] and gc.scheduled == []


@pytest.mark.parametrize("delay, headroom", [(-1, 0.1), (1, -0.1), (1, 1.5)])
def test_invalid_settings_are_refused(delay: float, headroom: float) -> None:
    with pytest.raises(ValueError):
        SandboxGC(delay, headroom, Clock())


def make_sandbox(root: Path, fid: str, eid: str, cid: str) -> Path:
    sandbox = root / fid / eid / cid
    sandbox.mkdir(parents=True)
    (sandbox / "stdout").write_text("out")
    (sandbox / "work").mkdir()
    (sandbox / "work" / "file").write_text("data")
    return sandbox


def test_remove_sandbox_keeps_linked_volumes_and_prunes_empty_parents(tmp_path: Path) -> None:
    root = tmp_path / "sandboxes"
    volume = tmp_path / "volumes" / "roles" / "db" / "vol-1"
    volume.mkdir(parents=True)
    (volume / "precious").write_text("keep me")
    done = make_sandbox(root, "fw1", "e1", "e1.1")
    (done / "data").symlink_to(volume)
    sibling = make_sandbox(root, "fw1", "e2", "e2.1")
    remove_sandbox(root, done)
    assert not done.exists() and not (root / "fw1" / "e1").exists()  # its executor dir was left empty
    assert (volume / "precious").read_text() == "keep me"
    assert sibling.exists() and root.exists()
    remove_sandbox(root, sibling)
    assert not (root / "fw1").exists() and root.exists()  # the root itself stays


def test_remove_sandbox_refuses_paths_outside_the_root_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "sandboxes"
    elsewhere = make_sandbox(tmp_path, "x", "y", "z")
    with pytest.raises(ValueError):
        remove_sandbox(root, elsewhere)
    with pytest.raises(ValueError):
        remove_sandbox(root, root / ".." / "x" / "y" / "z")
    with pytest.raises(ValueError):
        remove_sandbox(root, root)
    (root / "fw").mkdir(parents=True)
    (root / "fw" / "link").symlink_to(elsewhere)
    with pytest.raises(ValueError):
        remove_sandbox(root, root / "fw" / "link")
    assert (elsewhere / "work" / "file").exists()


def test_iter_sandboxes_lists_container_directories(tmp_path: Path) -> None:
    a = make_sandbox(tmp_path, "fw1", "e1", "c1")
    b = make_sandbox(tmp_path, "fw2", "e2", "c2")
    (tmp_path / "fw1" / "stray-file").write_text("")
    assert sorted(iter_sandboxes(tmp_path)) == sorted([a, b])
    assert list(iter_sandboxes(tmp_path / "missing")) == []


def test_filesystem_usage_is_a_fraction(tmp_path: Path) -> None:
    assert 0.0 < filesystem_usage(tmp_path) < 1.0
