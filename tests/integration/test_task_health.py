"""Health checks on real tasks: an HTTP server task whose health endpoint starts failing
is reported healthy, then unhealthy, then killed."""
from __future__ import annotations

import socket
import sys

import corral
from corral.protos import corral_pb2 as pb
from corral.testing.cluster import LocalCluster

from support import RecordingScheduler, start_driver

SERVER = """
import http.server, sys
served = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        served += 1
        self.send_response(200 if served <= 2 else 503)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HealthChecked(RecordingScheduler):
    def __init__(self, port: int) -> None:
        super().__init__([("web", "")])
        self.port = port

    def make_task(self, task_id, command, offer):
        check = pb.HealthCheck(type=pb.HealthCheck.HTTP, delay_seconds=0.5, interval_seconds=0.3,
                               timeout_seconds=2, consecutive_failures=2, grace_period_seconds=0)
        check.http.port = self.port
        check.http.path = "/health"
        return corral.command_task(task_id, [sys.executable, "-c", SERVER, str(self.port)], offer.agent_id,
                                   self.resources, task_id=task_id, health_check=check, grace_seconds=1)


def test_failing_health_endpoint_is_reported_and_the_task_killed(cluster: LocalCluster) -> None:
    scheduler = HealthChecked(free_port())
    driver = start_driver(scheduler, cluster, "health")
    try:
        assert scheduler.wait_terminal(["web"], timeout=60)
        web = [u for u in scheduler.updates if u.task_id.value == "web"]
        health = [(corral.state_name(u.state), u.healthy) for u in web if u.HasField("healthy")]
        assert health[:2] == [("TASK_RUNNING", True), ("TASK_RUNNING", False)]
        last = web[-1]
        assert last.state == corral.TASK_KILLED
        assert "health check failed" in last.message
        assert last.healthy is False
    finally:
        driver.stop()
