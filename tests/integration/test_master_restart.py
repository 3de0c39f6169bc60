"""The master SIGKILLed and restarted on the same work dir and address: agents come back
(the registry remembers them), the framework resubscribes with its id, its running task
is reconciled as RUNNING without having been touched (its sandbox still known), and an
agent the operator marks gone is remembered across the restart."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import corral
from corral.testing.cluster import LocalCluster, get_json, wait_for

from support import RecordingScheduler


def post(address: str, path: str, body: object) -> dict:
    request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_master_restart_loses_nothing(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, agents=2) as cluster:
        scheduler = RecordingScheduler([("survivor", "sleep 600")])
        info = corral.FrameworkInfo(name="steady", user="", failover_timeout=120.0)
        driver = corral.SchedulerDriver(scheduler, info, cluster.master_address)
        driver.start()
        try:
            assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states("survivor"))
            framework_id = scheduler.framework_id
            agents_before = sorted(a["id"] for a in cluster.state()["agents"])
            sandbox = get_json(cluster.master_address, "/task?task_id=survivor")["sandbox"]
            assert sandbox
            cluster.master.kill()
            cluster.master.start()
            cluster.wait_agents(2)
            # the restarted master has the task's sandbox from its agent's report
            assert get_json(cluster.master_address, "/task?task_id=survivor")["sandbox"] == sandbox
            assert sorted(a["id"] for a in cluster.state()["agents"]) == agents_before  # same agents, same ids
            wait_for(lambda: [f["id"] for f in cluster.state()["frameworks"] if f["connected"]] == [framework_id],
                     30, "the framework to resubscribe with its id")
            # the driver's built-in reconciliation asks about the task: RUNNING, untouched
            assert scheduler.wait(lambda: any(u.reason == corral.TaskStatus.REASON_RECONCILIATION
                                              and u.state == corral.TASK_RUNNING for u in scheduler.updates
                                              if u.task_id.value == "survivor"), timeout=30)
            assert scheduler.states("survivor").count("TASK_STARTING") == 1
            tasks = [t for a in cluster.agents for t in get_json(a.address, "/state")["tasks"]]
            assert [(t["id"], t["state"]) for t in tasks] == [("survivor", "TASK_RUNNING")]
            # an agent marked gone stays gone across another restart
            gone = next(a for a in agents_before if a not in {t["agent_id"] for f in cluster.state()["frameworks"]
                                                               for t in f["tasks"]})
            assert post(cluster.master_address, "/agents/gone", {"agent_id": gone})["gone"]
            cluster.master.kill()
            cluster.master.start()
            wait_for(lambda: len(cluster.state()["agents"]) == 1, 30, f"only the other agent to come back: {cluster.state()['agents']}")
            assert cluster.state()["agents"][0]["id"] != gone
        finally:
            driver.stop()
