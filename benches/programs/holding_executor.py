"""A custom executor for the HA failover bench: runs many tasks in one process; each
reports RUNNING and stays up until killed (so 200 tasks need only one process per agent)."""
from __future__ import annotations

import sys

import corral


class HoldingExecutor(corral.Executor):
    def __init__(self) -> None:
        self.tasks: set[str] = set()

    def launch_task(self, driver, task):
        self.tasks.add(task.task_id.value)
        driver.send_status_update(corral.task_status(task.task_id, corral.TASK_RUNNING))

    def kill_task(self, driver, task_id):
        if task_id.value in self.tasks:
            self.tasks.discard(task_id.value)
            driver.send_status_update(corral.task_status(task_id, corral.TASK_KILLED))

    def shutdown(self, driver):
        for task_id in sorted(self.tasks):
            self.kill_task(driver, corral.TaskID(value=task_id))


if __name__ == "__main__":
    sys.exit(0 if corral.ExecutorDriver(HoldingExecutor()).run() is corral.DriverStatus.STOPPED else 1)
