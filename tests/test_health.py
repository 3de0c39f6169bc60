"""Health checks: the checking loop with a fake clock, and real probes."""
from __future__ import annotations

import http.server
import socket
import threading

import pytest

from corral.executors.health import CheckResult, HealthChecker, probe, validate
from corral.protos import corral_pb2 as pb


class Script:
    """A fake clock plus a scripted sequence of probe results."""

    def __init__(self, results: list[bool]) -> None:
        self.now = 0.0
        self.results = list(results)
        self.probed_at: list[float] = []
        self.health: list[tuple[float, bool]] = []
        self.unhealthy: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return not self.results  # stop once the script is used up

    def probe(self, check, cwd) -> CheckResult:
        self.probed_at.append(self.now)
        ok = self.results.pop(0)
        return CheckResult(ok, "ok" if ok else "bad")

    def run(self, check: pb.HealthCheck) -> None:
        HealthChecker(check, lambda r: self.health.append((self.now, r.healthy)),
                      lambda r: self.unhealthy.append(self.now), wait=self.wait, clock=lambda: self.now,
                      run_probe=self.probe).run()


def check(**fields) -> pb.HealthCheck:
    hc = pb.HealthCheck(type=pb.HealthCheck.TCP, **fields)
    hc.tcp.port = 1
    return hc


def test_defaults_are_mesos_defaults() -> None:
    hc = pb.HealthCheck()
    assert (hc.delay_seconds, hc.interval_seconds, hc.timeout_seconds, hc.consecutive_failures,
            hc.grace_period_seconds) == (15.0, 10.0, 20.0, 3, 10.0)


def test_first_check_after_delay_then_every_interval_and_only_changes_reported() -> None:
    s = Script([True, True, False, True])
    s.run(check(consecutive_failures=3))
    assert s.probed_at == [15.0, 25.0, 35.0, 45.0]
    assert s.health == [(15.0, True), (35.0, False), (45.0, True)]
    assert s.unhealthy == []


def test_consecutive_failures_end_the_task() -> None:
    s = Script([True, False, False, False, True])
    s.run(check(consecutive_failures=3))
    assert s.unhealthy == [45.0]
    assert s.probed_at == [15.0, 25.0, 35.0, 45.0]  # no check after giving up


def test_a_success_resets_the_failure_count() -> None:
    s = Script([False, False, True, False, False, True])
    s.run(check(consecutive_failures=3, grace_period_seconds=0))
    assert s.unhealthy == []


def test_failures_in_the_grace_period_do_not_count() -> None:
    s = Script([False, False, False, False])
    s.run(check(delay_seconds=0, interval_seconds=1, grace_period_seconds=2.5, consecutive_failures=2))
    # probes at 0, 1, 2 (grace) and 3: only the one at 3 counts, so no kill yet; nothing reported in grace
    assert s.unhealthy == []
    assert s.health == [(3.0, False)]


def test_validate_names_the_problem() -> None:
    assert "port" in validate(pb.HealthCheck(type=pb.HealthCheck.HTTP, http=pb.HealthCheck.HTTPCheckInfo(port=0)))
    assert "command" in validate(pb.HealthCheck(type=pb.HealthCheck.COMMAND))
    assert "type" in validate(pb.HealthCheck())
    assert validate(check()) == ""


@pytest.fixture
def http_server():
    codes = {"/ok": 200, "/redirect": 302, "/bad": 500}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(codes.get(self.path, 404))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("path", "healthy"), [("/ok", True), ("/redirect", True), ("/bad", False), ("/nope", False)])
def test_http_probe_counts_200_to_399_as_healthy(http_server, path, healthy) -> None:
    hc = pb.HealthCheck(type=pb.HealthCheck.HTTP, timeout_seconds=5)
    hc.http.port = http_server
    hc.http.path = path
    assert probe(hc).healthy is healthy


def test_tcp_probe() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        hc = pb.HealthCheck(type=pb.HealthCheck.TCP, timeout_seconds=5)
        hc.tcp.port = port
        assert probe(hc).healthy
    assert not probe(hc).healthy  # closed now


def test_command_probe_uses_exit_status_and_timeout(tmp_path) -> None:
    ok = pb.HealthCheck(type=pb.HealthCheck.COMMAND, command=pb.CommandInfo(value="test -f marker"), timeout_seconds=5)
    assert not probe(ok, str(tmp_path)).healthy
    (tmp_path / "marker").touch()
    assert probe(ok, str(tmp_path)).healthy
    slow = pb.HealthCheck(type=pb.HealthCheck.COMMAND, command=pb.CommandInfo(value="sleep 5"), timeout_seconds=0.2)
    result = probe(slow)
    assert not result.healthy and "timed out" in result.message
