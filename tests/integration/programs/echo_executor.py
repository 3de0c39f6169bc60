"""A custom executor for tests: runs many tasks in one process. Each task reports
RUNNING and stays up until killed; a framework message is answered with the same bytes
reversed; `finish <task>` ends that task as FINISHED."""
from __future__ import annotations

import sys

import corral


class EchoExecutor(corral.Executor):
    def __init__(self) -> None:
        self.tasks: dict[str, corral.TaskInfo] = {}

    def launch_task(self, driver, task):
        self.tasks[task.task_id.value] = task
        driver.send_status_update(corral.task_status(task.task_id, corral.TASK_RUNNING, "echo executor at your service",
                                                     data=task.data))

    def kill_task(self, driver, task_id):
        if self.tasks.pop(task_id.value, None) is not None:
            driver.send_status_update(corral.task_status(task_id, corral.TASK_KILLED))

    def framework_message(self, driver, data):
        words = data.decode().split()
        if words[:1] == ["finish"] and self.tasks.pop(words[1], None) is not None:
            driver.send_status_update(corral.task_status(words[1], corral.TASK_FINISHED))
        else:
            driver.send_framework_message(data[::-1])

    def shutdown(self, driver):
        for task_id in list(self.tasks):
            self.kill_task(driver, corral.TaskID(value=task_id))


if __name__ == "__main__":
    sys.exit(0 if corral.ExecutorDriver(EchoExecutor()).run() is corral.DriverStatus.STOPPED else 1)
