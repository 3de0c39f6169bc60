"""A real network partition: an agent on its own test host (a network namespace joined
by a veth pair) is cut off past the master's liveness timeout, then healed. A
partition-aware framework sees its task UNREACHABLE, then RUNNING again with reason
AGENT_REREGISTERED; the task's process kept running throughout."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import corral
from corral.testing.cluster import LocalCluster, get_json, wait_for

from support import RecordingScheduler


def ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True)


class NetnsHost:
    """A network namespace with one veth link to this machine."""

    def __init__(self, tag: str) -> None:
        self.ns = f"corral-{tag}"
        self.host_if, self.ns_if = f"cvh{tag}", f"cvn{tag}"
        octet = 100 + int(tag) % 100
        self.host_ip, self.ns_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"

    def create(self) -> None:
        ip("netns", "add", self.ns)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.ns)
        ip("addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("addr", "add", f"{self.ns_ip}/24", "dev", self.ns_if, ns=self.ns)
        ip("link", "set", self.ns_if, "up", ns=self.ns)
        ip("link", "set", "lo", "up", ns=self.ns)

    def cut(self) -> None:
        ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        ip("link", "set", self.host_if, "up")

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


@pytest.fixture
def partitionable(tmp_path: Path) -> Iterator[tuple[LocalCluster, NetnsHost]]:
    host = NetnsHost(str(os.getpid() % 10000))
    host.destroy()  # leftovers of an interrupted run
    host.create()
    cluster = LocalCluster(tmp_path, agents=0, ip=host.host_ip,
                           master_flags=["--agent-ping-timeout", "0.5", "--max-agent-ping-timeouts", "3"])
    try:
        cluster.start()
        cluster.add_agent(ip=host.ns_ip, wrapper=["ip", "netns", "exec", host.ns])
        cluster.wait_agents(1)
        yield cluster, host
    finally:
        host.heal()
        cluster.stop()
        host.destroy()


def test_partitioned_agent_is_reported_unreachable_then_its_task_again(partitionable) -> None:
    cluster, host = partitionable
    scheduler = RecordingScheduler([("survivor", "sleep 600")])
    info = corral.FrameworkInfo(name="partition-aware", user="")
    info.capabilities.add(type=corral.FrameworkInfo.Capability.PARTITION_AWARE)
    driver = corral.SchedulerDriver(scheduler, info, cluster.master_address, host=host.host_ip)
    driver.start()
    try:
        assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states("survivor"))
        host.cut()
        assert scheduler.wait(lambda: "TASK_UNREACHABLE" in scheduler.states("survivor"), timeout=30)
        (agent,) = cluster.state()["agents"]
        assert agent["state"] == "unreachable"
        host.heal()
        assert scheduler.wait(lambda: scheduler.states("survivor")[-1:] == ["TASK_RUNNING"], timeout=60)
        back = [u for u in scheduler.updates if u.task_id.value == "survivor"][-1]
        assert back.reason == corral.TaskStatus.REASON_AGENT_REREGISTERED
        wait_for(lambda: cluster.state()["agents"][0]["state"] == "registered", 30, "the agent registered again")
        (task,) = get_json(cluster.agents[0].address, "/state")["tasks"]
        assert task["state"] == "TASK_RUNNING"  # the process was never touched
        # and the framework can still control it
        driver.kill_task(corral.TaskID(value="survivor"))
        assert scheduler.wait(lambda: scheduler.states("survivor")[-1:] == ["TASK_KILLED"], timeout=30)
    finally:
        driver.stop()
