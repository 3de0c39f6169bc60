"""What a new operator hit first, each with real processes: an agent on a relative work
dir, `corral execute`'s output and exit status, an advertised address for daemons that
listen on 0.0.0.0, `corral local`'s port ranges and work dir, and an unreachable master
reported instead of waited for in silence."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import corral
from corral.testing.cluster import LocalCluster, get_json, wait_for

pytestmark = pytest.mark.slow


def corral_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


def test_execute_prints_the_output_and_sandbox_and_exits_with_the_task_status(cluster: LocalCluster) -> None:
    env = dict(os.environ, CORRAL_MASTER=cluster.master_address)
    result = corral_cli("execute", "--command", "echo to-stdout; echo to-stderr >&2; exit 3", env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "TASK_FAILED" in result.stdout
    assert "to-stdout" in result.stdout and "to-stderr" in result.stderr
    sandbox = re.search(r"sandbox: (\S+) on agent (\S+)", result.stdout)
    assert sandbox, result.stdout
    assert any((a.work_dir / "sandboxes" / sandbox.group(1) / "stdout").exists() for a in cluster.agents)
    result = corral_cli("execute", "--command", "echo fine", env=env)
    assert result.returncode == 0 and "fine" in result.stdout


def test_an_agent_started_with_a_relative_work_dir_runs_tasks(cluster: LocalCluster, tmp_path: Path) -> None:
    agent = subprocess.Popen([sys.executable, "-m", "corral", "agent", "--master", cluster.master_address,
                              "--port", "0", "--work-dir", "relative/agent", "--resources", "cpus:1;mem:256",
                              "--attributes", "kind:relative"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert agent.stdout is not None and "listening on" in agent.stdout.readline()
        assert (tmp_path / "relative" / "agent").is_dir()
        scheduler_done = threading.Event()
        outcome: list[corral.TaskStatus] = []

        class OnTheRelativeAgent(corral.Scheduler):
            launched = False

            def resource_offers(self, driver, offers):
                for offer in offers:
                    if self.launched or not any(a.name == "kind" for a in offer.attributes):
                        driver.decline_offer(offer.id, corral.Filters(refuse_seconds=0.2))
                        continue
                    self.launched = True
                    driver.launch_tasks(offer.id, [corral.command_task("rel", "echo from-relative > out.txt",
                                                                       offer.agent_id, "cpus:0.1;mem:32")])

            def status_update(self, driver, status):
                if corral.is_terminal(status.state):
                    outcome.append(status)
                    scheduler_done.set()

        driver = corral.SchedulerDriver(OnTheRelativeAgent(), corral.FrameworkInfo(name="relative", user=""),
                                        cluster.master_address)
        driver.start()
        try:
            assert scheduler_done.wait(30)
        finally:
            driver.stop()
        assert corral.state_name(outcome[0].state) == "TASK_FINISHED", outcome[0].message
        assert [p.read_text() for p in (tmp_path / "relative" / "agent").rglob("out.txt")] == ["from-relative\n"]
    finally:
        agent.terminate()
        agent.wait(15)


def test_daemons_on_0000_advertise_an_address_peers_can_use(tmp_path: Path) -> None:
    flags = ["--advertise-ip", "127.0.0.1"]
    with LocalCluster(tmp_path, agents=1, ip="0.0.0.0", master_flags=flags, agent_flags=flags) as cluster:
        assert cluster.master_address.startswith("127.0.0.1:")
        info = get_json(cluster.master_address, "/info")
        assert info["transport"].startswith("tcp://127.0.0.1:")
        (agent,) = cluster.state()["agents"]
        assert agent["transport"].startswith("tcp://127.0.0.1:")
        result = corral_cli("execute", "--master", cluster.master_address, "--command", "echo reachable")
        assert result.returncode == 0, result.stdout + result.stderr


def test_corral_local_gives_each_agent_its_own_ports_and_says_where_its_work_dir_is(tmp_path: Path) -> None:
    report = tmp_path / "agents.json"
    probe = (f"{sys.executable} -c \"import json, os, urllib.request; "
             f"s = json.load(urllib.request.urlopen('http://' + os.environ['CORRAL_MASTER'] + '/state')); "
             f"open('{report}', 'w').write(json.dumps([a['resources']['ports'] for a in s['agents']]))\"")
    result = corral_cli("local", "--agents", "2", "--port", "0", "--run", probe, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    ports = json.loads(report.read_text())
    assert len(ports) == 2 and ports[0] != ports[1]
    spans = [tuple(map(int, p.strip("[]").split("-"))) for p in ports]
    assert spans[0][1] < spans[1][0] or spans[1][1] < spans[0][0]  # no port in both
    work_dir = re.search(r"work dir: (\S+) \(logs and sandboxes; removed on exit", result.stdout)
    assert work_dir, result.stdout
    assert not Path(work_dir.group(1)).exists()
    assert "web UI:   http://" in result.stdout

    kept = tmp_path / "kept"
    result = corral_cli("local", "--agents", "1", "--port", "0", "--work-dir", str(kept), "--run", "true", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"work dir: {kept} (logs and sandboxes; kept on exit)" in result.stdout
    assert (kept / "master").is_dir()


def test_a_driver_reports_an_unreachable_master_through_error(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []
    told = threading.Event()

    class Waiting(corral.Scheduler):
        def error(self, driver, message):
            errors.append(message)
            told.set()

    caplog.set_level(logging.WARNING, logger="corral.runtime.detector")
    driver = corral.SchedulerDriver(Waiting(), corral.FrameworkInfo(name="lonely", user=""), "127.0.0.1:1")
    driver.start()
    try:
        assert told.wait(10)
    finally:
        driver.stop()
    assert "cannot reach the master at 127.0.0.1:1" in errors[0]
    assert any(r.levelno == logging.WARNING and "127.0.0.1:1" in r.getMessage() for r in caplog.records)


def test_an_agent_whose_master_is_down_says_so(tmp_path: Path) -> None:
    agent = subprocess.Popen([sys.executable, "-m", "corral", "agent", "--master", "127.0.0.1:1", "--port", "0",
                              "--work-dir", str(tmp_path), "--resources", "cpus:1;mem:64"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert agent.stderr is not None
        line = wait_for(lambda: next((l for l in iter(agent.stderr.readline, "") if "WARNING" in l), None), 20,
                        "the agent's warning")
        assert "cannot reach the master at 127.0.0.1:1" in line
    finally:
        agent.terminate()
        agent.wait(15)
