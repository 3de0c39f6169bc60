"""corral.agent.limits: process-tree accounting on real processes, sandbox disk usage,
the enforcer's checks, cgroup v2 detection over fake /proc and cgroup files, and the
cgroup container layout on a fake cgroup directory."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from corral.agent.limits import (
    MB,
    Cgroup2,
    CgroupContainers,
    LimitEnforcer,
    Limitation,
    LimitKind,
    container_processes,
    cpu_weight,
    detect_cgroup2,
    disk_usage,
    parse_stat,
    scan_processes,
    tree_rss,
)
from corral.engines.agent import ContainerLimits
from corral.protos import corral_pb2 as pb

#: holds `mb` MB resident, says "ready", then waits for stdin to close
HOLDER = "import sys; b = bytearray({mb} * 1024 * 1024); print('ready', flush=True); sys.stdin.read()"


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
    return value


@pytest.fixture
def container() -> Iterator[subprocess.Popen[str]]:
    """A 'container' like the agent starts: a session leader holding 20 MB whose child
    holds 30 MB in a session of its own (as the command executor starts tasks), plus a
    `sleep` reparented away from the tree but left in the leader's session."""
    script = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {HOLDER.format(mb=30)!r}], stdin=subprocess.PIPE,\n"
        "                         stdout=subprocess.PIPE, text=True, start_new_session=True)\n"
        "assert child.stdout.readline() == 'ready\\n'\n"
        "subprocess.run(['/bin/sh', '-c', 'sleep 60 &'])\n"  # the shell exits: its sleep is reparented
        f"exec({HOLDER.format(mb=20)!r})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, start_new_session=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    yield process
    for pid in container_processes(process.pid, scan_processes()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def test_parse_stat_handles_parentheses_and_spaces_in_the_command_name() -> None:
    fields = ["S", "7", "40", "41"] + ["0"] * 17 + ["25"] + ["0"] * 20
    entry = parse_stat("1234 (evil) (name x) " + " ".join(fields))
    assert (entry.pid, entry.ppid, entry.session) == (1234, 7, 41)
    assert entry.rss == 25 * os.sysconf("SC_PAGE_SIZE")


def test_a_container_is_its_tree_and_every_process_of_their_sessions(container: subprocess.Popen[str]) -> None:
    table = scan_processes()
    found = container_processes(container.pid, table)
    sessions = {table[pid].session for pid in found}
    assert container.pid in sessions and len(sessions) == 2  # the leader's session and the child's own
    names = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in found)
    assert names.count("sleep") == 1 and len(found) == 3, names  # leader, child, reparented sleep
    sleep = next(pid for pid in found if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep")
    assert table[sleep].ppid not in found  # reached through the session, not the tree
    assert os.getpid() not in found


def test_tree_rss_sums_the_resident_memory_of_all_the_container_processes(container: subprocess.Popen[str]) -> None:
    table = scan_processes()
    used = tree_rss(container.pid, table)
    assert used >= 50 * MB  # 20 MB + 30 MB held, plus two interpreters
    leader_alone = table[container.pid].rss
    assert 20 * MB <= leader_alone < used - 30 * MB
    assert tree_rss(2 ** 22 + 7, table) == 0  # a pid that is not there


def test_the_enforcer_reports_a_container_over_its_memory_once(container: subprocess.Popen[str], tmp_path: Path) -> None:
    reported: list[tuple[str, Limitation]] = []
    limits = {"c1": ContainerLimits(mem_mb=40)}
    enforcer = LimitEnforcer(lambda cid, lim: reported.append((cid, lim)), lambda: dict(limits))
    enforcer.attach("c1", container.pid, tmp_path, ContainerLimits(mem_mb=1024))
    assert enforcer.check() == reported
    ((cid, limitation),) = reported
    assert cid == "c1" and limitation.kind is LimitKind.MEMORY
    assert limitation.reason == pb.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY
    assert "of its 40 MB" in limitation.message and "MB (resident" in limitation.message
    assert enforcer.check() == [] and len(reported) == 1  # once
    assert enforcer.detach("c1") == limitation
    assert enforcer.detach("c1") is None


def test_the_enforcer_follows_the_limits_the_engine_gives(container: subprocess.Popen[str], tmp_path: Path) -> None:
    limits = {"c1": ContainerLimits(mem_mb=1024)}
    reported: list[str] = []
    enforcer = LimitEnforcer(lambda cid, lim: reported.append(cid), lambda: dict(limits))
    enforcer.attach("c1", container.pid, tmp_path, ContainerLimits(mem_mb=10))  # at launch: a small limit
    assert enforcer.check() == [] and reported == []  # ...but the engine's current one is larger
    limits["c1"] = ContainerLimits()  # no mem resource at all: not limited
    assert enforcer.check() == []
    limits["c1"] = ContainerLimits(mem_mb=30)
    assert [cid for cid, _ in enforcer.check()] == ["c1"]


def test_disk_usage_counts_allocated_blocks_once_and_does_not_follow_symlinks(tmp_path: Path) -> None:
    sandbox, outside = tmp_path / "sandbox", tmp_path / "volume"
    sandbox.mkdir(), outside.mkdir()
    (sandbox / "sub").mkdir()
    (sandbox / "sub" / "data").write_bytes(os.urandom(3 * MB))
    os.link(sandbox / "sub" / "data", sandbox / "hardlink")
    (outside / "big").write_bytes(os.urandom(8 * MB))
    os.symlink(outside, sandbox / "volume")
    (sandbox / "sparse").open("wb").truncate(100 * MB)  # no blocks allocated
    used = disk_usage(sandbox)
    assert 3 * MB <= used < 4 * MB


def test_the_enforcer_reports_a_sandbox_over_its_disk(tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(os.urandom(2 * MB))
    now = [0.0]
    limits = {"c1": ContainerLimits(disk_mb=1)}
    reported: list[Limitation] = []
    enforcer = LimitEnforcer(lambda cid, lim: reported.append(lim), lambda: dict(limits), disk_interval=5.0,
                             clock=lambda: now[0])
    enforcer.attach("c1", os.getpid(), tmp_path, ContainerLimits(disk_mb=1))
    limits["c1"] = ContainerLimits(disk_mb=4)
    assert enforcer.check() == []  # 2 MB of 4
    limits["c1"] = ContainerLimits(disk_mb=1)
    now[0] = 4.9
    assert enforcer.check() == []  # the disk is measured every 5 s only
    now[0] = 5.0
    ((_, limitation),) = enforcer.check()
    assert limitation.kind is LimitKind.DISK and limitation.reason == pb.TaskStatus.REASON_CONTAINER_LIMITATION_DISK
    assert "of its 1 MB" in limitation.message


# ------------------------------------------------------------------ cgroup v2
def make_cgroup(root: Path, relative: str, subtree: str) -> Path:
    path = root / "sys/fs/cgroup" / relative.lstrip("/")
    path.mkdir(parents=True)
    (path / "cgroup.subtree_control").write_text(subtree)
    return path


V2_MOUNTS = "sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n"
HYBRID_MOUNTS = ("tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
                 "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
V1_MOUNTS = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"


@pytest.mark.parametrize("mounts, self_cgroup, layout, expected", [
    # delegated v2 with memory and cpu enabled for children
    (V2_MOUNTS, "0::/agent.slice\n", ("agent.slice", "cpu memory pids"), ("agent.slice", True)),
    # memory only
    (V2_MOUNTS, "0::/agent.slice\n", ("agent.slice", "memory"), ("agent.slice", False)),
    # the controllers are available but not enabled for children
    (V2_MOUNTS, "0::/agent.slice\n", ("agent.slice", "cpu pids"), None),
    # hybrid (as on this machine): cgroup2 at .../unified without controllers
    (HYBRID_MOUNTS, "4:memory:/x\n0::/\n", ("unified", ""), None),
    # v1 only: no unified hierarchy at all
    (V1_MOUNTS, "4:memory:/x\n", None, None),
    # the agent's cgroup directory is missing
    (V2_MOUNTS, "0::/elsewhere\n", ("agent.slice", "memory"), None),
])
def test_cgroup2_detection(tmp_path: Path, mounts: str, self_cgroup: str, layout: tuple[str, str] | None,
                           expected: tuple[str, bool] | None) -> None:
    if layout is not None:
        make_cgroup(tmp_path, layout[0], layout[1])
    found = detect_cgroup2(mounts, self_cgroup, root_prefix=tmp_path)
    if expected is None:
        assert found is None
    else:
        assert found == Cgroup2(tmp_path / "sys/fs/cgroup" / expected[0], expected[1])


def test_cgroup_containers_write_limits_and_enter_the_executor_before_it_runs(tmp_path: Path) -> None:
    base = make_cgroup(tmp_path, "agent", "cpu memory")
    cgroups = CgroupContainers(Cgroup2(base, cpu=True))
    assert (base / "corral" / "cgroup.subtree_control").read_text() == "+memory +cpu"
    prefix = cgroups.create("exec/1.2")
    path = cgroups.path("exec/1.2")
    assert path.parent == base / "corral" and (path / "memory.oom.group").read_text() == "1"
    cgroups.set_limits("exec/1.2", ContainerLimits(mem_mb=128, cpus=1.5))
    assert (path / "memory.max").read_text() == str(128 * MB)
    assert (path / "cpu.weight").read_text() == "150"
    cgroups.set_limits("exec/1.2", ContainerLimits())
    assert (path / "memory.max").read_text() == "max"
    # the prefix writes the executor's own pid into cgroup.procs, then execs it (same pid)
    process = subprocess.run([*prefix, sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True)
    assert (path / "cgroup.procs").read_text().strip() == process.stdout.strip()
    assert not cgroups.oom_killed("exec/1.2")
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert cgroups.oom_killed("exec/1.2")


def test_an_oom_kill_in_the_cgroup_is_reported_as_a_memory_limitation_on_exit(tmp_path: Path) -> None:
    cgroups = CgroupContainers(Cgroup2(make_cgroup(tmp_path, "agent", "memory"), cpu=False))
    enforcer = LimitEnforcer(lambda cid, lim: None, dict, cgroups=cgroups)
    cgroups.create("c1")
    enforcer.attach("c1", os.getpid(), None, ContainerLimits(mem_mb=64))
    assert not (cgroups.path("c1") / "cpu.weight").exists()  # no cpu controller delegated
    (cgroups.path("c1") / "memory.events").write_text("oom_kill 2\n")
    limitation = enforcer.detach("c1")
    assert limitation is not None and limitation.kind is LimitKind.MEMORY and "64 MB" in limitation.message


@pytest.mark.parametrize("cpus, weight", [(0.001, 1), (0.1, 10), (1, 100), (4, 400), (1000, 10000)])
def test_cpu_weight_is_proportional_to_cpus_within_the_kernel_range(cpus: float, weight: int) -> None:
    assert cpu_weight(cpus) == weight
