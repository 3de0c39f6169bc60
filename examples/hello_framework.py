"""A first corral framework: launch a few shell tasks, print how each one ends.

    corral local --agents 2 --run "python examples/hello_framework.py"

or, against a running master:  python examples/hello_framework.py --master 127.0.0.1:5050
"""
from __future__ import annotations

import argparse
import os
import sys
import threading

import corral

TASK_RESOURCES = "cpus:0.1;mem:32"


class HelloScheduler(corral.Scheduler):
    """Launches `count` tasks, one per offer slot, and waits for every one to end."""

    def __init__(self, count: int) -> None:
        self.to_launch = [f"hello-{i}" for i in range(count)]
        self.outcomes: dict[str, str] = {}
        self.count = count
        self.done = threading.Event()

    def registered(self, driver, framework_id, master_info):
        print(f"registered as {framework_id.value} with master {master_info.hostname}:{master_info.port}")

    def resource_offers(self, driver, offers):
        need = corral.Resources.parse(TASK_RESOURCES)
        for offer in offers:
            available = corral.Resources.from_protos(offer.resources)
            tasks = []
            while self.to_launch and available.contains(need):
                name = self.to_launch.pop()
                command = f"echo hello from {name} on $(hostname), pid $$"
                tasks.append(corral.command_task(name, command, offer.agent_id, need, task_id=name))
                available = available - need
            if tasks:
                driver.launch_tasks(offer.id, tasks)
            else:
                driver.decline_offer(offer.id, corral.Filters(refuse_seconds=30))

    def status_update(self, driver, status):
        name = corral.state_name(status.state)
        print(f"  {status.task_id.value}: {name}" + (f" ({status.message})" if status.message else ""))
        if corral.is_terminal(status.state):
            self.outcomes[status.task_id.value] = name
            if len(self.outcomes) == self.count:
                self.done.set()

    def error(self, driver, message):
        print(f"error: {message}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default=os.environ.get("CORRAL_MASTER", "127.0.0.1:5050"))
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    scheduler = HelloScheduler(args.tasks)
    framework = corral.FrameworkInfo(name="hello", user="")
    driver = corral.SchedulerDriver(scheduler, framework, args.master)
    driver.start()
    finished = scheduler.done.wait(args.timeout)
    driver.stop()
    finished_ok = sum(1 for s in scheduler.outcomes.values() if s == "TASK_FINISHED")
    print(f"{finished_ok}/{args.tasks} tasks finished")
    return 0 if finished and finished_ok == args.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
