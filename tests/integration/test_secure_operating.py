"""Operating a secured cluster over HTTP, with real processes: a master and an agent with
CurveZMQ links, HTTP credentials, TLS with a self-signed certificate and ACLs; two
frameworks of the users alice and bob; the principals "operator" (who may do
everything), "alice-viewer" (who may view alice's frameworks, tasks and sandboxes, and
nothing of bob's) and "nobody" (who may view nothing).

Sandboxes read through the master are authorised for the caller (the master asks the
agent, which asks for credentials too, as itself); /state, /tasks, /task and the event
stream show each principal what it may view; the operator CLI and `corral execute` take
credentials and a CA, and say what a 401 or a 403 refused."""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

import corral
from corral.security.links import Credential
from corral.testing.cluster import LocalCluster, basic_auth, wait_for

from support import EventReader, RecordingScheduler, make_certificate

pytestmark = pytest.mark.slow

ALICE_ONLY = [{"principals": {"values": ["operator"]}, "users": {"type": "ANY"}},
              {"principals": {"values": ["alice-viewer"]}, "users": {"values": ["alice"]}},
              {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]
ACLS = {
    "view_frameworks": ALICE_ONLY,
    "view_tasks": ALICE_ONLY,
    "access_sandboxes": ALICE_ONLY,
    "kill_tasks": [{"principals": {"values": ["operator"]}, "framework_principals": {"type": "ANY"}},
                   {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}}],
}
SECRETS = {"alice-viewer": "alice-viewer-secret", "nobody": "nobody-secret"}


def secured_cluster(root: Path, acls: dict[str, Any]) -> LocalCluster:
    """A secured LocalCluster with TLS, `acls` on the master and the principals of
    SECRETS beside the operator (the agents take the same credentials file); tasks run
    as the agent's user (the frameworks' users are names, not accounts)."""
    cert, key = make_certificate(root)
    (root / "acls.json").write_text(json.dumps(acls))
    cluster = LocalCluster(root / "cluster", agents=1, secure=True, tls=(cert, key),
                           master_flags=["--acls", str(root / "acls.json")], agent_flags=["--no-switch-user"])
    assert cluster.secure is not None
    credentials = json.loads(cluster.secure.http_credentials.read_text())
    credentials["credentials"] += [{"principal": p, "secret": s} for p, s in SECRETS.items()]
    cluster.secure.http_credentials.write_text(json.dumps(credentials))
    return cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="corral-secure-ops-"))
    try:
        with secured_cluster(root, ACLS) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Tenant:
    """A framework of `user`, driven in this process over CurveZMQ."""

    def __init__(self, cluster: LocalCluster, user: str) -> None:
        assert cluster.secure is not None
        self.scheduler = RecordingScheduler()
        credential = Credential.load(cluster.secure.framework_key, cluster.secure.master_public)
        self.driver = corral.SchedulerDriver(self.scheduler, corral.FrameworkInfo(name=f"{user}-fw", user=user),
                                             cluster.client_env()["CORRAL_MASTER"], credential=credential)
        self.driver.start()
        assert self.scheduler.registered_event.wait(30), self.scheduler

    def run(self, command: str, state: str = "TASK_RUNNING") -> str:
        task_id = f"t-{uuid.uuid4().hex[:8]}"
        self.scheduler.pending.append((task_id, command))
        assert self.scheduler.wait(lambda: state in self.scheduler.states(task_id)), self.scheduler
        return task_id


@pytest.fixture(scope="module")
def tenants(cluster: LocalCluster) -> Iterator[dict[str, Tenant]]:
    os.environ["CORRAL_TLS_CA"] = str(cluster.tls[0])  # (the drivers find the master over HTTPS)
    tenants = {user: Tenant(cluster, user) for user in ("alice", "bob")}
    try:
        yield tenants
    finally:
        for tenant in tenants.values():
            tenant.driver.stop()
        os.environ.pop("CORRAL_TLS_CA", None)


def tls(cluster: LocalCluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cluster.tls[0]))


def auth(cluster: LocalCluster, principal: str) -> str:
    assert cluster.secure is not None
    return cluster.secure.authorization() if principal == "operator" else basic_auth(principal, SECRETS[principal])


def ask(cluster: LocalCluster, principal: str | None, endpoint: str, **query: Any) -> tuple[int, Any]:
    """(status, JSON body) of a GET of the master's `endpoint` as `principal` (None: no
    credentials)."""
    url = f"https://{cluster.master_address}{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url)
    if principal is not None:
        request.add_header("Authorization", auth(cluster, principal))
    try:
        with urllib.request.urlopen(request, timeout=10, context=tls(cluster)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def task_of(cluster: LocalCluster, task_id: str) -> dict[str, Any]:
    status, task = ask(cluster, "operator", "/task", task_id=task_id)
    assert status == 200, task
    wait_for(lambda: ask(cluster, "operator", "/task", task_id=task_id)[1]["sandbox"], 10, "the task's sandbox")
    return ask(cluster, "operator", "/task", task_id=task_id)[1]


def denials(cluster: LocalCluster, action: str) -> int:
    return ask(cluster, "operator", "/metrics/snapshot")[1].get(f"master/denied/{action}", 0)


def sandbox_on_disk(cluster: LocalCluster, task: dict[str, Any]) -> Path:
    return cluster.agents[0].work_dir / "sandboxes" / task["sandbox"]


# ------------------------------------------------------------------ sandboxes
def test_sandbox_reads_through_the_master_are_authorised_for_the_caller(cluster: LocalCluster, tenants):
    alice = task_of(cluster, tenants["alice"].run("echo alice-was-here; sleep 600"))
    bob = task_of(cluster, tenants["bob"].run("echo bob-secret; sleep 600"))

    def read(principal: str | None, task: dict[str, Any], name: str = "stdout") -> tuple[int, Any]:
        return ask(cluster, principal, "/files/read", agent_id=task["agent_id"], path=f"{task['sandbox']}/{name}",
                   offset=0)

    status, body = read("alice-viewer", alice)  # the agent asks for credentials too: the master has its own
    assert status == 200 and "alice-was-here" in body["data"], body
    status, body = read("operator", bob)
    assert status == 200 and "bob-secret" in body["data"], body

    before = denials(cluster, "access_sandboxes")
    status, body = read("alice-viewer", bob)
    assert status == 403 and body["error"] == \
        "principal 'alice-viewer' is not authorized to access_sandboxes for user 'bob'", body
    status, body = ask(cluster, "nobody", "/files/browse", agent_id=bob["agent_id"], path=bob["sandbox"])
    assert status == 403 and "principal 'nobody'" in body["error"], body
    assert denials(cluster, "access_sandboxes") == before + 2
    status, body = read(None, alice)
    assert status == 401, body

    # a link in alice's sandbox to bob's: the agent does not follow it for a caller of alice's
    (sandbox_on_disk(cluster, alice) / "peek").symlink_to(sandbox_on_disk(cluster, bob))
    for principal in ("alice-viewer", "operator"):
        status, body = read(principal, alice, "peek/stdout")
        assert status == 403 and "leads out of the sandboxes of framework" in body["error"], body
    status, body = ask(cluster, "alice-viewer", "/files/browse", agent_id=alice["agent_id"], path=alice["sandbox"])
    assert status == 200 and "stdout" in {e["name"] for e in body}, body


# ------------------------------------------------------------------ views
def test_state_and_tasks_show_each_principal_what_it_may_view(cluster: LocalCluster, tenants):
    alice_task = tenants["alice"].run("sleep 600")
    bob_task = tenants["bob"].run("sleep 600")

    def frameworks(principal: str) -> set[str]:
        return {f["name"] for f in ask(cluster, principal, "/state")[1]["frameworks"]}

    def tasks(principal: str) -> set[str]:
        return {t["id"] for t in ask(cluster, principal, "/tasks")[1]["tasks"]}

    assert frameworks("operator") == {"alice-fw", "bob-fw"} and frameworks("alice-viewer") == {"alice-fw"}
    assert frameworks("nobody") == set()
    assert {alice_task, bob_task} <= tasks("operator")
    assert alice_task in tasks("alice-viewer") and bob_task not in tasks("alice-viewer")
    assert tasks("nobody") == set()
    assert ask(cluster, "alice-viewer", "/task", task_id=alice_task)[0] == 200
    status, body = ask(cluster, "alice-viewer", "/task", task_id=bob_task)
    assert status == 403 and body["error"] == \
        "principal 'alice-viewer' is not authorized to view_frameworks for user 'bob'", body


def test_the_event_stream_sends_each_principal_only_what_it_may_view(cluster: LocalCluster, tenants):
    readers = {p: EventReader(cluster.master_address, auth(cluster, p), tls(cluster))
               for p in ("operator", "alice-viewer", "nobody")}
    try:
        for principal, reader in readers.items():
            (name, first), = reader.wait(lambda events: events[:1])
            assert name == "SUBSCRIBED"
            names = {f["name"] for f in first["state"]["frameworks"]}
            assert names == {"operator": {"alice-fw", "bob-fw"}, "alice-viewer": {"alice-fw"}, "nobody": set()}[principal]
        alice_task = tenants["alice"].run("sleep 600")
        bob_task = tenants["bob"].run("sleep 600")

        def added(events) -> set[str]:
            return {t["id"] for n, d in events if n == "TASK_ADDED" for t in d["tasks"]}

        def updated(events) -> set[str]:
            return {e[0] for n, d in events if n == "TASK_UPDATED" for e in d["tasks"]}

        readers["operator"].wait(lambda events: {alice_task, bob_task} <= added(events) | updated(events))
        readers["alice-viewer"].wait(lambda events: alice_task in added(events) | updated(events))
        # every reader has had a heartbeat since: what the others were not sent is not coming
        for reader in readers.values():
            count = sum(1 for n, _ in reader.events if n == "HEARTBEAT")
            reader.wait(lambda events: sum(1 for n, _ in events if n == "HEARTBEAT") > count + 1)
        assert bob_task not in added(readers["alice-viewer"].events) | updated(readers["alice-viewer"].events)
        assert not any(n.startswith(("TASK_", "FRAMEWORK_")) for n, _ in readers["nobody"].events)
        assert any(n == "AGENT_UPDATED" or n == "HEARTBEAT" for n, _ in readers["nobody"].events)
    finally:
        for reader in readers.values():
            reader.close()


def test_the_event_stream_asks_for_credentials(cluster: LocalCluster):
    with pytest.raises(urllib.error.HTTPError) as refused:
        EventReader(cluster.master_address, None, tls(cluster))
    assert refused.value.code == 401 and refused.value.headers["WWW-Authenticate"] == 'Basic realm="corral"'


def test_a_write_from_another_sites_page_is_refused(cluster: LocalCluster, tenants):
    task_id = tenants["alice"].run("sleep 600")
    request = urllib.request.Request(f"https://{cluster.master_address}/tasks/kill",
                                     data=json.dumps({"task_id": task_id}).encode(),
                                     headers={"Authorization": auth(cluster, "operator"),
                                              "Origin": "https://evil.example", "Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=tls(cluster))
    assert refused.value.code == 403 and "another site's page" in json.loads(refused.value.read())["error"]
    assert ask(cluster, "operator", "/task", task_id=task_id)[1]["state"] == "TASK_RUNNING"


# ------------------------------------------------------------------ the CLI
def cli(cluster: LocalCluster, *args: str, principal: str | None = "operator", ca: bool = True,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`corral ARGS` against the cluster's master (https://...), as `principal` through
    the CORRAL_HTTP_* variables, with --tls-ca (or without)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env["CORRAL_MASTER"] = f"https://{cluster.master_address}"
    if principal is not None:
        env["CORRAL_HTTP_PRINCIPAL"] = principal
        env["CORRAL_HTTP_SECRET"] = cluster.secure.operator_secret if principal == "operator" else SECRETS[principal]
    flags = ["--tls-ca", str(cluster.tls[0])] if ca else []
    return subprocess.run([sys.executable, "-m", "corral", *args, *flags], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_with_credentials_lists_what_the_principal_may_view(cluster: LocalCluster, tenants):
    alice_task = tenants["alice"].run("sleep 600")
    bob_task = tenants["bob"].run("sleep 600")
    listed = cli(cluster, "tasks", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {alice_task, bob_task} <= {t["id"] for t in json.loads(listed.stdout)}
    listed = cli(cluster, "tasks", "--json", principal="alice-viewer")
    ids = {t["id"] for t in json.loads(listed.stdout)}
    assert alice_task in ids and bob_task not in ids
    shown = cli(cluster, "frameworks")
    assert shown.returncode == 0 and "alice-fw" in shown.stdout and "bob-fw" in shown.stdout, shown.stderr
    agents = cli(cluster, "agents", principal=None, ca=True)  # nothing given: the message says what to give
    assert agents.returncode == 1 and "Traceback" not in agents.stderr
    assert "asks for HTTP credentials" in agents.stderr and "--http-principal" in agents.stderr


def test_cli_says_what_a_401_or_a_403_refused(cluster: LocalCluster, tenants):
    bob_task = tenants["bob"].run("sleep 600")
    env_wrong = cli(cluster, "agents", "--http-principal", "operator", "--http-secret", "wrong")
    assert env_wrong.returncode == 1 and "Traceback" not in env_wrong.stderr
    assert "did not accept the credentials of principal 'operator'" in env_wrong.stderr, env_wrong.stderr
    kill = cli(cluster, "task", "kill", bob_task, principal="alice-viewer")
    assert kill.returncode == 1 and "Traceback" not in kill.stderr
    assert "principal 'alice-viewer' is not authorized to kill_tasks" in kill.stderr, kill.stderr
    logs = cli(cluster, "task", "logs", bob_task, principal="alice-viewer")
    assert logs.returncode == 1 and "is not authorized to view_frameworks for user 'bob'" in logs.stderr, logs.stderr
    untrusted = cli(cluster, "agents", ca=False)
    assert untrusted.returncode == 1 and "Traceback" not in untrusted.stderr
    assert "cannot trust the certificate" in untrusted.stderr and "--tls-ca" in untrusted.stderr, untrusted.stderr
    plain = subprocess.run([sys.executable, "-m", "corral", "agents", "--master", cluster.master_address],
                           capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")})
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "https://HOST:PORT" in plain.stderr, plain.stderr
    assert tenants["bob"].scheduler.states(bob_task)[-1] == "TASK_RUNNING"


def test_cli_task_logs_and_kill_with_credentials(cluster: LocalCluster, tenants):
    task_id = tenants["alice"].run("echo line-for-the-cli; sleep 600")
    wait_for(lambda: "line-for-the-cli" in cli(cluster, "task", "logs", task_id, principal="alice-viewer").stdout,
             20, "the task's stdout through the CLI")
    killed = cli(cluster, "task", "kill", task_id)
    assert killed.returncode == 0, killed.stderr
    assert tenants["alice"].scheduler.wait(lambda: "TASK_KILLED" in tenants["alice"].scheduler.states(task_id))


def test_corral_execute_against_the_secured_master(cluster: LocalCluster):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(cluster.client_env())  # CORRAL_MASTER (https), CORRAL_TLS_CA, keys, the operator's HTTP credentials
    result = subprocess.run([sys.executable, "-m", "corral", "execute", "--command", "echo executed-securely",
                             "--timeout", "60"], capture_output=True, text=True, timeout=90, env=env)
    assert result.returncode == 0, result.stderr
    assert "executed-securely" in result.stdout and "sandbox:" in result.stdout, result.stdout
    env.pop("CORRAL_HTTP_SECRET")
    result = subprocess.run([sys.executable, "-m", "corral", "execute", "--command", "true", "--timeout", "60"],
                            capture_output=True, text=True, timeout=90, env=env)
    assert result.returncode == 1 and "principal 'operator' has no secret" in result.stderr, result.stderr
