"""The Cassandra scheduler with its state in ZooKeeper (--zk), following HA masters
through ZooKeeper (--master zk://...), failing over to "another machine": SIGKILLed
mid-deploy, started again with a fresh --state-dir. Real processes: a ZooKeeper server,
2 masters, 4 agents, the nodes and the scheduler."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from corral.examples.cassandra.testing import LocalService, free_port
from corral.testing.cluster import wait_for


def cli(service: LocalService, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.examples.cassandra", args[0], "--api", service.api, *args[1:]],
                          capture_output=True, text=True, timeout=120)


def frameworks(service: LocalService) -> list[tuple[str, str]]:
    return [(f["id"], f["name"]) for f in service.cluster.state()["frameworks"]]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_scheduler_on_zookeeper_fails_over_to_a_fresh_state_dir_mid_deploy_with_no_duplicate_or_leak(tmp_path):
    with LocalService(tmp_path, masters=2, zk=True, scheduler_flags=["--permanent-failure-timeout", "3"]) as service:
        assert service.scheduler_argv()[service.scheduler_argv().index("--master") + 1].startswith("zk://")
        wait_for(lambda: (service.pod("node-1") or {}).get("task_id"), 90, "node-1 launched")
        assert cli(service, "plan", "interrupt", "deploy").stdout.strip() == "plan deploy interrupted"
        framework = frameworks(service)
        assert len(framework) == 1

        # a second instance started by mistake on the same --zk path: refused, naming the
        # holder, and it changes nothing
        second = [*service.scheduler_argv(), "--zk-lock-timeout", "1"]
        second[second.index("--api-port") + 1] = str(free_port())
        second[second.index("--state-dir") + 1] = str(tmp_path / "mistake")
        refused = subprocess.run(second, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2, refused.stderr
        assert f"another scheduler instance holds /cassandra/lock (held by " in refused.stderr
        assert f'"pid": {service.scheduler.pid}' in refused.stderr
        assert service.plan_status() == "WAITING" and frameworks(service) == framework

        # the scheduler's machine is gone: SIGKILL, and start it elsewhere (a fresh state dir)
        service.kill_scheduler()
        tasks_before = {t["id"] for t in service.tasks()}
        service.state_dir = tmp_path / "another-machine"
        service.start_scheduler()
        # its framework id back, and the operator's interrupt: the step under way
        # finishes, no new one starts
        wait_for(lambda: service.request("GET", "/v1/plans/deploy")["phases"][0]["steps"][1]["status"] == "COMPLETE",
                 90, "node-1 complete")
        assert service.plan_status() == "WAITING" and service.pod("node-2")["task_id"] is None
        assert frameworks(service) == framework
        assert cli(service, "plan", "continue", "deploy").returncode == 0
        service.wait_plan("deploy")
        tasks = service.assert_deployed_once(("node-0", "node-1", "node-2"))
        assert {t["id"] for t in tasks} >= tasks_before  # nothing relaunched
        assert not any((tmp_path / d / "state.sqlite").exists() for d in ("scheduler", "another-machine", "mistake"))

        # deployed: a failover with no state dir at all changes nothing
        service.kill_scheduler()
        service.state_dir = None
        service.start_scheduler()
        service.wait_plan("deploy")
        assert {t["id"] for t in service.tasks()} == {t["id"] for t in tasks}
        assert frameworks(service) == framework
        assert service.scheduler.poll() is None, service.log_tail()


def test_a_scheduler_given_no_store_or_a_bad_zk_url_or_master_says_so():
    base = [sys.executable, "-m", "corral.examples.cassandra", "scheduler"]
    cases = [
        (["--master", "127.0.0.1:5050"], "no state store: give --state-dir DIR, or --zk zk://HOST:PORT/PATH"),
        (["--master", "127.0.0.1:5050", "--zk", "zk://127.0.0.1:2181"], "it names no path"),
        (["--master", "zk://127.0.0.1:2181/m", "--zk", "zk://nohost/x"], "'nohost' is not HOST:PORT"),
        (["--master", "zk:/127.0.0.1:2181/m", "--zk", "zk://127.0.0.1:2181/x"], "invalid master address"),
    ]
    for flags, message in cases:
        run = subprocess.run([*base, *flags], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and message in run.stderr, (flags, run.stderr)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_scheduler_paused_past_its_session_while_another_took_over_exits_and_changes_nothing(tmp_path):
    with LocalService(tmp_path, zk=True) as service:
        service.wait_plan("deploy")
        tasks = {t["id"] for t in service.tasks()}
        paused = service.scheduler
        assert paused is not None
        paused.send_signal(signal.SIGSTOP)  # a scheduler frozen (or cut off) past its ZooKeeper session
        # its replacement, started elsewhere, waits for the lock until that session expires
        service.api_port = free_port()
        service.argv[service.argv.index("--api-port") + 1] = str(service.api_port)
        service.state_dir = tmp_path / "another-machine"
        service.start_scheduler()
        service.wait_plan("deploy")
        paused.send_signal(signal.SIGCONT)
        assert paused.wait(30) == 3  # it finds out and stops at once, doing nothing more
        assert "cassandra scheduler: exiting: this scheduler instance can no longer write the store" in \
            service.log_tail(200)
        assert service.scheduler.poll() is None and service.plan_status() == "COMPLETE"
        assert {t["id"] for t in service.tasks()} == tasks
        assert cli(service, "pod", "restart", "node-0").returncode == 0  # the new instance writes on
        wait_for(lambda: service.pod("node-0")["task_id"] not in tasks and service.pod("node-0")["up"], 90,
                 "node-0 restarted by the new instance")
