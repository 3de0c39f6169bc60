"""A framework program for failover tests. It keeps its framework id in a file, so a
restarted copy fails over the previous one; it launches `--tasks` long-running tasks
only when it starts without an id, and writes every event as a JSON line to `--events`.
It has no reconciliation code of its own: the driver's built-in rounds do that."""
from __future__ import annotations

import argparse
import json
import sys
import threading

import corral


class Recorder(corral.Scheduler):
    def __init__(self, out, launch: int) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.to_launch = [f"long-{i}" for i in range(launch)]

    def emit(self, **event) -> None:
        with self.lock:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()

    def registered(self, driver, framework_id, master_info):
        self.emit(event="registered", framework_id=framework_id.value)

    def reregistered(self, driver, master_info):
        self.emit(event="reregistered")

    def resource_offers(self, driver, offers):
        for offer in offers:
            if not self.to_launch:
                driver.decline_offer(offer.id, corral.Filters(refuse_seconds=3600))
                continue
            tid = self.to_launch.pop()
            driver.launch_tasks(offer.id, [corral.command_task(tid, "sleep 600", offer.agent_id, "cpus:0.1;mem:32",
                                                               task_id=tid)])

    def status_update(self, driver, status):
        self.emit(event="update", task=status.task_id.value, state=corral.state_name(status.state),
                  reason=corral.TaskStatus.Reason.Name(status.reason) if status.HasField("reason") else "",
                  source=corral.TaskStatus.Source.Name(status.source))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--master", required=True)
    parser.add_argument("--id-file", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    fresh = not corral.FrameworkIdStore(args.id_file).load()
    with open(args.events, "a", encoding="utf-8") as out:
        scheduler = Recorder(out, args.tasks if fresh else 0)
        info = corral.FrameworkInfo(name="failover", user="", failover_timeout=300.0)
        driver = corral.SchedulerDriver(scheduler, info, args.master, framework_id_file=args.id_file)
        driver.start()
        for line in sys.stdin:  # the test sends commands: "kill TASK" or "stop"
            command = line.split()
            if command[:1] == ["kill"]:
                driver.kill_task(corral.TaskID(value=command[1]))
            elif command[:1] == ["stop"]:
                break
        driver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
