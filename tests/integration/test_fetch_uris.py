"""A command's URIs fetched by a real agent before the task starts: a path, an archive
(extracted), an http URI served by the test; a missing URI fails the task naming it."""
from __future__ import annotations

import http.server
import io
import tarfile
import threading
from pathlib import Path

import corral
from corral.testing.cluster import LocalCluster

from support import RecordingScheduler, start_driver


class FetchingScheduler(RecordingScheduler):
    def __init__(self, tasks: list[tuple[str, str]], uris: dict[str, list[corral.CommandInfo.URI]]) -> None:
        super().__init__(tasks)
        self.uris = uris

    def make_task(self, task_id, command, offer):
        return corral.command_task(task_id, command, offer.agent_id, self.resources, task_id=task_id,
                                   uris=self.uris[task_id])


def test_uris_are_fetched_into_the_sandbox_before_the_task_runs(cluster: LocalCluster, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from a path\n")
    with tarfile.open(tmp_path / "bundle.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("pkg/inside.txt")
        payload = b"from an archive\n"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    www = tmp_path / "www"
    www.mkdir()
    (www / "remote.txt").write_text("from http\n")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    uris = {
        "fetching": [corral.uri(str(tmp_path / "data.txt")), corral.uri(str(tmp_path / "bundle.tgz")),
                     corral.uri(f"{base}/remote.txt", cache=True)],
        "missing": [corral.uri(str(tmp_path / "data.txt")), corral.uri(str(tmp_path / "nope.tgz"))],
    }
    scheduler = FetchingScheduler([("fetching", "cat data.txt pkg/inside.txt remote.txt"), ("missing", "true")], uris)
    driver = start_driver(scheduler, cluster, "fetcher")
    try:
        assert scheduler.wait_terminal(["fetching", "missing"]), scheduler
        assert scheduler.states("fetching")[-1] == "TASK_FINISHED", scheduler
        failed = [u for u in scheduler.updates if u.task_id.value == "missing"][-1]
        assert corral.state_name(failed.state) == "TASK_FAILED"
        assert failed.reason == corral.TaskStatus.REASON_CONTAINER_LAUNCH_FAILED
        assert str(tmp_path / "nope.tgz") in failed.message and "no such file" in failed.message
        outputs = [p.read_text() for p in cluster.work_dir.glob("agent-*/sandboxes/*/fetching/*/stdout")]
        assert outputs == ["from a path\nfrom an archive\nfrom http\n"]
    finally:
        driver.stop()
        server.shutdown()
        server.server_close()
