"""Real processes failing: the framework program SIGKILLed and restarted."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from corral.testing.cluster import LocalCluster, get_json, wait_for

PROGRAM = Path(__file__).parent / "programs" / "failover_framework.py"


class FrameworkProcess:
    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self.events = workdir / "events.jsonl"
        self.process = subprocess.Popen(
            [sys.executable, str(PROGRAM), "--master", cluster.master_address, "--id-file", str(workdir / "framework-id"),
             "--events", str(self.events)],
            stdin=subprocess.PIPE, text=True)

    def read(self) -> list[dict]:
        if not self.events.exists():
            return []
        return [json.loads(line) for line in self.events.read_text().splitlines() if line.strip()]

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()


def running_on_agents(cluster: LocalCluster) -> dict[str, str]:
    states = {}
    for agent in cluster.agents:
        for task in get_json(agent.address, "/state")["tasks"]:
            states[task["id"]] = task["state"]
    return states


def test_framework_sigkilled_and_restarted_fails_over_and_reconciles(cluster: LocalCluster, tmp_path: Path) -> None:
    first = FrameworkProcess(cluster, tmp_path)
    tasks = {"long-0", "long-1", "long-2"}
    wait_for(lambda: {e["task"] for e in first.read() if e["event"] == "update" and e["state"] == "TASK_RUNNING"} >= tasks,
             30, "three running tasks")
    (registered,) = [e for e in first.read() if e["event"] == "registered"]
    framework_id = registered["framework_id"]
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    wait_for(lambda: any(f["id"] == framework_id and not f["connected"] for f in cluster.state()["frameworks"]),
             20, "the master to see the framework disconnected")
    assert set(running_on_agents(cluster)) >= tasks  # its tasks keep running meanwhile

    mark = len(first.read())
    second = FrameworkProcess(cluster, tmp_path)
    try:
        def after_restart() -> list[dict]:
            return first.read()[mark:]

        # same framework id: a failover, not a new framework
        wait_for(lambda: any(e["event"] == "registered" for e in after_restart()), 20, "the restarted framework")
        assert [e["framework_id"] for e in after_restart() if e["event"] == "registered"] == [framework_id]
        frameworks = [f for f in cluster.state()["frameworks"] if f["name"] == "failover"]
        assert [f["id"] for f in frameworks] == [framework_id] and frameworks[0]["connected"]
        # no reconciliation code in the program: the driver learns the true states
        wait_for(lambda: {e["task"] for e in after_restart() if e["event"] == "update"} >= tasks, 20,
                 "reconciliation answers for every task")
        for event in after_restart():
            if event["event"] == "update":
                assert event["state"] == "TASK_RUNNING" and event["reason"] == "REASON_RECONCILIATION"
        # and it controls them: kills (retried by the driver) end them
        for task in sorted(tasks):
            second.send(f"kill {task}")
        wait_for(lambda: {e["task"] for e in after_restart() if e.get("state") == "TASK_KILLED"} >= tasks, 30,
                 "the tasks killed")
    finally:
        second.send("stop")
        second.process.wait(20)
