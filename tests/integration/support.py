"""Test helpers for real-cluster tests: a scheduler that records what it sees."""
from __future__ import annotations

import json
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any

import corral
from corral.testing.cluster import LocalCluster


class RecordingScheduler(corral.Scheduler):
    """Launches the tasks it is given on the first offers that fit; records everything."""

    def __init__(self, tasks: list[tuple[str, str]] | None = None, resources: str = "cpus:0.1;mem:32") -> None:
        self.pending = list(tasks or [])  # (task id, shell command)
        self.resources = corral.Resources.parse(resources)
        self.updates: list[corral.TaskStatus] = []
        self.errors: list[str] = []
        self.messages: list[bytes] = []
        self.framework_id: str | None = None
        self.registered_event = threading.Event()
        self.cond = threading.Condition()
        self.offers_seen = 0

    def registered(self, driver, framework_id, master_info):
        self.framework_id = framework_id.value
        self.registered_event.set()

    def resource_offers(self, driver, offers):
        self.offers_seen += len(offers)
        for offer in offers:
            available = corral.Resources.from_protos(offer.resources)
            tasks = []
            while self.pending and available.contains(self.resources):
                task_id, command = self.pending.pop(0)
                tasks.append(self.make_task(task_id, command, offer))
                available = available - self.resources
            if tasks:
                driver.launch_tasks(offer.id, tasks)
            else:
                driver.decline_offer(offer.id, corral.Filters(refuse_seconds=1))

    def make_task(self, task_id: str, command: str, offer: corral.Offer) -> corral.TaskInfo:
        return corral.command_task(task_id, command, offer.agent_id, self.resources, task_id=task_id)

    def status_update(self, driver, status):
        with self.cond:
            self.updates.append(status)
            self.cond.notify_all()

    def framework_message(self, driver, executor_id, agent_id, data):
        with self.cond:
            self.messages.append(data)
            self.cond.notify_all()

    def error(self, driver, message):
        with self.cond:
            self.errors.append(message)
            self.cond.notify_all()

    # -- helpers for tests -------------------------------------------------------
    def __repr__(self) -> str:  # what a failed assertion shows about this scheduler
        seen = ", ".join(f"{u.task_id.value}:{corral.state_name(u.state)}" for u in self.updates[-20:])
        return (f"<RecordingScheduler framework={self.framework_id} offers_seen={self.offers_seen} "
                f"pending={[t for t, _ in self.pending]} errors={self.errors[-5:]} last updates=[{seen}]>")

    def states(self, task_id: str) -> list[str]:
        return [corral.state_name(u.state) for u in self.updates if u.task_id.value == task_id]

    def wait(self, predicate, timeout: float = 30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_terminal(self, task_ids: list[str], timeout: float = 30.0) -> bool:
        return self.wait(lambda: all(any(corral.is_terminal(u.state) for u in self.updates
                                         if u.task_id.value == t) for t in task_ids), timeout)


class EventReader:
    """The master's /events, read on a thread: (name, data) of every event so far (over
    HTTPS with `tls`, the context that checks the master; as whoever `authorization`
    proves)."""

    def __init__(self, address: str, authorization: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.cond = threading.Condition()
        request = urllib.request.Request(f"{'https' if tls else 'http'}://{address}/events")
        if authorization is not None:
            request.add_header("Authorization", authorization)
        self.response = urllib.request.urlopen(request, timeout=30, context=tls)
        assert self.response.headers["Content-Type"] == "text/event-stream"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name = None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    with self.cond:
                        self.events.append((name, json.loads(line[6:])))
                        self.cond.notify_all()
        except (OSError, ValueError, AttributeError):  # (closed: http.client drops its file)
            return

    def wait(self, predicate, timeout: float = 15.0) -> Any:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.events), timeout), self.events[-10:]
            return predicate(self.events)

    def close(self) -> None:
        self.response.close()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def start_driver(scheduler: corral.Scheduler, cluster: LocalCluster, name: str, **kwargs) -> corral.SchedulerDriver:
    info = corral.FrameworkInfo(name=name, user="")
    driver = corral.SchedulerDriver(scheduler, info, cluster.master_address, **kwargs)
    driver.start()
    return driver
