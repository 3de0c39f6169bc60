"""The agent's sandbox file endpoints: browse and read, and no path escapes."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from corral.testing.cluster import LocalCluster

from support import RecordingScheduler, start_driver


def fetch(address: str, endpoint: str, **query: object) -> tuple[int, object]:
    url = f"http://{address}{endpoint}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def sandbox(cluster: LocalCluster) -> tuple[str, str]:
    """(agent address, sandbox path) of a finished task that left files and a symlink."""
    scheduler = RecordingScheduler([("writer", "printf 0123456789 > data.txt; ln -s /etc/passwd leak; ln -s / root")])
    driver = start_driver(scheduler, cluster, "files")
    try:
        assert scheduler.wait_terminal(["writer"])
        assert scheduler.states("writer")[-1] == "TASK_FINISHED"
    finally:
        driver.stop()
    for agent in cluster.agents:
        found = list((agent.work_dir / "sandboxes").glob("*/writer/*"))
        if found:
            return agent.address, str(found[0])
    raise AssertionError("no sandbox found for the task")


def test_browse_lists_the_sandbox(sandbox) -> None:
    address, path = sandbox
    status, entries = fetch(address, "/files/browse", path=path)
    assert status == 200
    names = {e["name"] for e in entries}
    assert {"data.txt", "stdout", "stderr"} <= names
    assert next(e for e in entries if e["name"] == "data.txt")["size"] == 10


def test_read_with_offset_and_length(sandbox) -> None:
    address, path = sandbox
    status, whole = fetch(address, "/files/read", path=f"{path}/data.txt")
    assert (status, whole) == (200, {"offset": 10, "data": "", "length": 0})  # no offset: just the size
    status, part = fetch(address, "/files/read", path=f"{path}/data.txt", offset=3, length=4)
    assert (status, part) == (200, {"offset": 3, "data": "3456", "length": 4})


@pytest.mark.parametrize("escape", ["/etc/passwd", "{sandbox}/../../../../../../etc/passwd", "{sandbox}/leak",
                                    "{sandbox}/root/etc"])
def test_paths_outside_the_sandboxes_are_refused(sandbox, escape: str) -> None:
    address, path = sandbox
    status, body = fetch(address, "/files/read", path=escape.format(sandbox=path), offset=0)
    assert status == 403, body
    assert "outside the sandboxes" in body["error"]


@pytest.mark.parametrize("escape", ["/etc", "{sandbox}/../../../../../..", "{sandbox}/root"])
def test_browsing_outside_the_sandboxes_is_refused(sandbox, escape: str) -> None:
    address, path = sandbox
    status, body = fetch(address, "/files/browse", path=escape.format(sandbox=path))
    assert status == 403, body


def test_bad_parameters_get_clear_errors(sandbox) -> None:
    address, path = sandbox
    status, body = fetch(address, "/files/read", path=f"{path}/data.txt", offset="abc")
    assert status == 400 and "'abc'" in body["error"]
    status, body = fetch(address, "/files/read", path=f"{path}/missing.txt", offset=0)
    assert status == 404
    status, body = fetch(address, "/files/browse")
    assert status == 400 and "path" in body["error"]
