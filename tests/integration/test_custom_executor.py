"""A custom executor (an `Executor` subclass run as its own process) running several
tasks, with framework messages both ways."""
from __future__ import annotations

import sys
from pathlib import Path

import corral
from corral.testing.cluster import LocalCluster, get_json

from support import RecordingScheduler, start_driver

PROGRAM = Path(__file__).parent / "programs" / "echo_executor.py"


class EchoFramework(RecordingScheduler):
    def __init__(self) -> None:
        super().__init__([("echo-1", ""), ("echo-2", "")], resources="cpus:0.1;mem:32")
        self.executor = corral.executor_info("echo", [sys.executable, str(PROGRAM)], resources="cpus:0.1;mem:32")
        self.agent: corral.AgentID | None = None

    def resource_offers(self, driver, offers):
        # both tasks on one agent, so that one executor runs them both
        for offer in offers:
            if self.pending and (self.agent is None or offer.agent_id == self.agent):
                self.agent = offer.agent_id
                tasks = [corral.executor_task(tid, self.executor, offer.agent_id, self.resources, task_id=tid,
                                              data=corral.pack({"n": i}))
                         for i, (tid, _) in enumerate(self.pending)]
                self.pending.clear()
                driver.launch_tasks(offer.id, tasks)
            else:
                driver.decline_offer(offer.id, corral.Filters(refuse_seconds=60))


def test_one_custom_executor_runs_several_tasks_and_exchanges_messages(cluster: LocalCluster) -> None:
    scheduler = EchoFramework()
    driver = start_driver(scheduler, cluster, "echo")
    try:
        assert scheduler.wait(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in ("echo-1", "echo-2")))
        running = {u.task_id.value: u for u in scheduler.updates if u.state == corral.TASK_RUNNING}
        assert corral.unpack(running["echo-2"].data) == {"n": 1}  # task data reached the executor
        # one executor process holds both tasks
        executors = [e for a in cluster.agents for e in get_json(a.address, "/state")["executors"]]
        assert [(e["id"], e["tasks"]) for e in executors if e["id"] == "echo"] == [("echo", ["echo-1", "echo-2"])]
        driver.send_framework_message(corral.ExecutorID(value="echo"), scheduler.agent, b"hello executor")
        assert scheduler.wait(lambda: b"rotucexe olleh" in scheduler.messages)
        driver.send_framework_message(corral.ExecutorID(value="echo"), scheduler.agent, b"finish echo-1")
        driver.kill_task(corral.TaskID(value="echo-2"))
        assert scheduler.wait_terminal(["echo-1", "echo-2"])
        assert scheduler.states("echo-1")[-1] == "TASK_FINISHED"
        assert scheduler.states("echo-2")[-1] == "TASK_KILLED"
    finally:
        driver.stop()
