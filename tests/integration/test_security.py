"""A secured cluster of real processes (`LocalCluster(secure=True)`: CurveZMQ on every
link, a key ring, HTTP credentials, ACLs): strangers without a known key get nothing in
and are counted; a known principal cannot act for another, even naming its address;
the ACLs refuse with a message naming the principal and the action; HTTP asks for
credentials; a revoked key is locked out without a restart; random bytes at the
transport port never stop the master."""
from __future__ import annotations

import json
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import http.client as http_client
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import corral
from corral._core.envelope import encode
from corral._core.envelope import Dispatcher
from corral.net import wire
from corral.net.protocol import MessageType
from corral.net.transport import Transport
from corral.protos import corral_pb2 as pb
from corral.security.keys import generate, load_pair
from corral.security.links import Credential, CurveLinks, KeyTable
from corral.testing.cluster import Daemon, LocalCluster, basic_auth, wait_for

from support import RecordingScheduler

README = Path(__file__).resolve().parents[2] / "README.md"

ACLS = {
    "register_frameworks": [
        {"principals": {"values": ["framework", "alice", "mallory", "carol"]}, "roles": {"values": ["*", "web"]}},
        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}},
    ],
    "update_weights": [
        {"principals": {"values": ["operator"]}, "roles": {"type": "ANY"}},
        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}},
    ],
}


@pytest.fixture(scope="module")
def secure():
    # a work dir other users can pass through (pytest's are private to root): tasks run
    # as other users in their sandboxes under it
    root = Path(tempfile.mkdtemp(prefix="corral-secure-"))
    root.chmod(0o711)
    (root / "acls.json").write_text(json.dumps(ACLS))
    cluster = LocalCluster(root, agents=1, secure=True, master_flags=["--acls", str(root / "acls.json")])
    assert cluster.secure is not None
    credentials = json.loads(cluster.secure.http_credentials.read_text())
    credentials["credentials"].append({"principal": "viewer", "secret": "read-only"})
    cluster.secure.http_credentials.write_text(json.dumps(credentials))
    try:
        with cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


def metric(cluster: LocalCluster, name: str) -> int:
    return cluster.get(cluster.master_address, "/metrics/snapshot").get(name, 0)


def credential(cluster: LocalCluster, name: str) -> Credential:
    """The credential of a principal the master admits (made if new)."""
    assert cluster.secure is not None
    return Credential.load(cluster.secure.key_of(name), cluster.secure.master_public)


def stranger(tmp_path: Path, cluster: LocalCluster, name: str = "stranger") -> Credential:
    """A well-formed key pair the master's ring does not hold."""
    assert cluster.secure is not None
    (public,) = generate(tmp_path / "elsewhere", [name])
    return Credential.load(Path(f"{public}_secret"), cluster.secure.master_public)


def start(cluster: LocalCluster, scheduler: corral.Scheduler, name: str, credential: Credential | None,
          role: str = "") -> corral.SchedulerDriver:
    info = corral.FrameworkInfo(name=name, user="")
    if role:
        info.role = role
    driver = corral.SchedulerDriver(scheduler, info, cluster.master_address, credential=credential)
    driver.start()
    return driver


def frameworks(cluster: LocalCluster) -> dict[str, dict]:
    return {f["name"]: f for f in cluster.state()["frameworks"]}


def test_the_readmes_first_framework_runs_unchanged_against_a_secured_cluster(secure: LocalCluster, tmp_path: Path):
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text[text.index("## Your first framework"):], re.S).group(1)
    program = tmp_path / "first.py"
    program.write_text(code.replace('"127.0.0.1:5050"', repr(secure.master_address)))
    env = dict(os.environ, **secure.client_env())
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=90, env=env)
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["TASK_STARTING", "TASK_RUNNING",
                                                                         "TASK_FINISHED"]


def test_corral_local_secure_runs_the_example_framework(tmp_path: Path):
    """`corral local --secure --run ...`, as the README shows it."""
    example = README.parent / "examples" / "hello_framework.py"
    result = subprocess.run([sys.executable, "-m", "corral", "local", "--secure", "--agents", "1", "--port", "0",
                             "--work-dir", str(tmp_path), "--run", f"{sys.executable} {example}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "secured: keys in" in result.stdout and "4/4 tasks finished" in result.stdout
    assert sorted(p.name for p in (tmp_path / "security" / "keys" / "ring").iterdir()) == ["agent-1.key",
                                                                                           "framework.key"]


def test_processes_without_a_known_key_get_nothing_in_and_are_counted(secure: LocalCluster, tmp_path: Path):
    refused, failed = metric(secure, "transport/curve_refused"), metric(secure, "transport/curve_failed")
    unknown = RecordingScheduler()
    plain = RecordingScheduler()
    drivers = [start(secure, unknown, "unknown-key", stranger(tmp_path, secure)),
               start(secure, plain, "plaintext", None)]
    # an agent whose key the ring does not hold
    (public,) = generate(tmp_path / "rogue", ["rogue-agent"])
    rogue = Daemon("rogue-agent", [*secure._base, "agent", "--master", secure.master_address, "--port", "0",
                                   "--work-dir", str(tmp_path / "rogue-agent"), "--resources", "cpus:8;mem:8192",
                                   "--key", f"{public}_secret", "--master-key", str(secure.secure.master_public)],
                   tmp_path / "rogue-agent", secure.env)
    rogue.start()
    # and a status update injected over a connection with an unknown key
    injector = Transport("127.0.0.1", 0, Dispatcher(), curve=stranger(tmp_path, secure, "injector").links())
    try:
        agent_address = secure.state()["agents"][0]["transport"]
        update = wire.StatusUpdateMessage([])
        injector.send_frame(secure.master.transport, encode(int(MessageType.STATUS_UPDATE), 1, agent_address.encode(),
                                                            update.SerializeToString()))
        wait_for(lambda: metric(secure, "transport/curve_refused") >= refused + 3
                 and metric(secure, "transport/curve_failed") > failed, 20, "the refusals counted")
        state = secure.state()
        assert {f["name"] for f in state["frameworks"]}.isdisjoint({"unknown-key", "plaintext"})
        assert len(state["agents"]) == 1
        assert unknown.framework_id is None and plain.framework_id is None
        assert "unknown CurveZMQ key" in secure.master.log_tail(200)
    finally:
        injector.close()
        rogue.stop()
        for driver in drivers:
            driver.abort()


def test_a_framework_cannot_act_on_anothers_tasks_even_naming_its_address(secure: LocalCluster):
    alice = RecordingScheduler([("alice-task", "sleep 60")])
    driver = start(secure, alice, "alice", credential(secure, "alice"))
    mallory = Transport("127.0.0.1", 0, Dispatcher(), curve=credential(secure, "mallory").links())
    try:
        assert alice.wait(lambda: "TASK_RUNNING" in alice.states("alice-task")), alice
        forged = metric(secure, "master/forged_senders")
        victim = frameworks(secure)["alice"]
        fid = pb.FrameworkID(value=victim["id"])
        forgeries = [
            (MessageType.KILL, pb.Kill(framework_id=fid, task_id=pb.TaskID(value="alice-task"))),
            (MessageType.RECONCILE, pb.Reconcile(framework_id=fid)),
            (MessageType.ACKNOWLEDGE, wire.Acknowledge(victim["id"], [(victim["tasks"][0]["agent_id"], "alice-task",
                                                                       b"\0" * 16)])),
            (MessageType.TEARDOWN, pb.Teardown(framework_id=fid)),
        ]
        transport = driver._runtime.transport.address.encode()  # the header names alice's own address
        for seq, (kind, body) in enumerate(forgeries):
            mallory.send_frame(secure.master.transport, encode(int(kind), seq, transport, body.SerializeToString()))
        wait_for(lambda: metric(secure, "master/forged_senders") >= forged + len(forgeries), 20,
                 "the forgeries counted")
        assert frameworks(secure)["alice"]["tasks"][0]["state"] == "TASK_RUNNING"
        assert alice.states("alice-task")[-1] == "TASK_RUNNING" and not alice.errors
    finally:
        mallory.close()
        driver.stop()


def test_a_role_outside_the_acls_is_refused_with_a_message(secure: LocalCluster):
    scheduler = RecordingScheduler()
    driver = start(secure, scheduler, "wrong-role", credential(secure, "alice"), role="prod")
    try:
        assert scheduler.wait(lambda: scheduler.errors), scheduler
        assert ("framework rejected: principal 'alice' is not authorized to register_frameworks for role 'prod'"
                in scheduler.errors[0])
        assert "wrong-role" not in frameworks(secure)
        assert metric(secure, "master/denied/register_frameworks") >= 1
    finally:
        driver.abort()


def http(address: str, path: str, body: object | None = None, authorization: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://{address}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None)
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_http_asks_for_credentials_then_the_acls(secure: LocalCluster):
    master = secure.master_address
    agent = secure.agents[0].address
    assert http(master, "/health")[0] == 200 and http(master, "/info")[0] == 200  # what discovery needs
    for address, path in ((master, "/state"), (master, "/metrics/snapshot"), (agent, "/state"),
                          (agent, "/files/browse?path=nothing-here")):
        assert http(address, path)[0] == 401, path
        assert http(address, path, authorization=basic_auth("viewer", "wrong"))[0] == 401, path
        assert http(address, path, authorization=basic_auth("viewer", "read-only"))[0] in (200, 404), path
    status, reply = http(master, "/weights", [{"role": "web", "weight": 2}])
    assert status == 401 and "authentication required" in reply["error"]
    status, reply = http(master, "/weights", [{"role": "web", "weight": 2}], basic_auth("viewer", "read-only"))
    assert status == 403 and reply["error"] == "principal 'viewer' is not authorized to update_weights for role 'web'"
    assert http(master, "/weights", authorization=basic_auth("viewer", "read-only"))[1]["weights"] == []
    status, _ = http(master, "/weights", [{"role": "web", "weight": 2}], secure.secure.authorization())
    assert status == 200


def test_a_revoked_key_is_locked_out_without_a_restart(secure: LocalCluster, tmp_path: Path):
    first = RecordingScheduler([("before", "echo before")])
    driver = start(secure, first, "revocable", credential(secure, "carol"))
    try:
        assert first.wait_terminal(["before"]), first
        refused, revoked = metric(secure, "transport/refused"), metric(secure, "master/key_ring/revoked")
        os.remove(secure.secure.ring / "carol.key")
        wait_for(lambda: metric(secure, "master/key_ring/revoked") > revoked, 20, "carol revoked")
        # its open connection: what it sends from now on is refused and counted
        first.pending.append(("after", "echo after"))
        driver.revive_offers()
        wait_for(lambda: metric(secure, "transport/refused") > refused, 20, "carol's frames refused")
        # and a new connection with the key is refused at the handshake
        curve_refused = metric(secure, "transport/curve_refused")
        again = RecordingScheduler()
        second = start(secure, again, "revoked-again", credential_from(secure, "carol"))
        wait_for(lambda: metric(secure, "transport/curve_refused") > curve_refused, 20, "the new connection refused")
        assert again.framework_id is None
        second.abort()
        assert "after" not in {t["id"] for f in secure.state()["frameworks"] for t in f["tasks"]}
    finally:
        driver.abort()


def credential_from(cluster: LocalCluster, name: str) -> Credential:
    """The credential of an existing key pair, whether the ring holds it or not."""
    assert cluster.secure is not None
    return Credential.load(cluster.secure.keys / f"{name}.key_secret", cluster.secure.master_public)


def test_random_handshake_and_envelope_bytes_never_stop_a_daemon(secure: LocalCluster):
    assert secure.secure is not None
    agent_public = load_pair(secure.secure.keys / "agent-1.key").public
    targets = [  # (transport, a key pair it admits, its public key, its metrics endpoint)
        (secure.master.transport, load_pair(secure.secure.key_of("fuzzer")),
         load_pair(secure.secure.master_public).public, secure.master_address),
        (secure.agents[0].transport, load_pair(secure.secure.master_secret), agent_public, secure.agents[0].address),
    ]
    rng = random.Random(25)
    for transport, pair, server_key, http_address in targets:
        host, port = transport.removeprefix("tcp://").rsplit(":", 1)
        for _ in range(1000):  # handshakes: ZMTP greetings and garbage
            with socket.create_connection((host, int(port)), timeout=5) as conn:
                greeting = b"\xff" + bytes(8) + b"\x7f\x03" + bytes([rng.randrange(3)]) + b"CURVE".ljust(20, b"\0")
                conn.sendall(greeting if rng.random() < 0.5 else rng.randbytes(rng.randrange(1, 200)))
        received = secure.get(http_address, "/metrics/snapshot")["transport/received"]
        fuzzer = Transport("127.0.0.1", 0, Dispatcher(), curve=CurveLinks(pair, KeyTable(), lambda _to: server_key))
        try:
            for seq in range(2000):  # envelopes over an admitted key: random types, senders and bodies
                if rng.random() < 0.5:
                    frame = rng.randbytes(rng.randrange(0, 300))
                else:
                    frame = encode(rng.choice(list(MessageType)).value, seq, rng.randbytes(rng.randrange(0, 40)),
                                   rng.randbytes(rng.randrange(0, 200)))
                fuzzer.send_frame(transport, frame)
            wait_for(lambda: secure.get(http_address, "/metrics/snapshot")["transport/received"] >= received + 2000,
                     30, f"the fuzz received at {transport}")
        finally:
            fuzzer.close()
    assert secure.master.alive() and secure.agents[0].alive()
    scheduler = RecordingScheduler([("after-fuzz", "echo ok")])
    driver = start(secure, scheduler, "after-fuzz", credential(secure, "framework"))
    try:
        assert scheduler.wait_terminal(["after-fuzz"]), scheduler
        assert scheduler.states("after-fuzz")[-1] == "TASK_FINISHED"
    finally:
        driver.stop()


def test_tasks_run_as_their_user_and_an_unknown_user_fails_the_task(secure: LocalCluster):
    """The agent runs as root and switches users (its default): a task runs as its
    command's user, else its framework's, in a sandbox of that user's."""

    class AsUsers(RecordingScheduler):
        def make_task(self, task_id, command, offer):
            task = super().make_task(task_id, command, offer)
            if task_id == "as-command-user":
                task.command.user = "daemon"
            if task_id == "as-nobody-knows":
                task.command.user = "no-such-user-25"
            return task

    assert os.geteuid() == 0, "the agent switches users only as root"
    # each task prints its own user, then its executor's (the owner of its parent's /proc
    # entry): corral's command executor stays the agent's user (root), so a corral
    # installed where only root can read (a venv under a 0700 folder) serves any user
    who = "id -un; stat -c %U /proc/$PPID"
    scheduler = AsUsers([("as-framework-user", who), ("as-command-user", who), ("as-nobody-knows", who)])
    info = corral.FrameworkInfo(name="users", user="nobody")
    driver = corral.SchedulerDriver(scheduler, info, secure.master_address, credential=credential(secure, "framework"))
    driver.start()
    try:
        tasks = ["as-framework-user", "as-command-user", "as-nobody-knows"]
        assert scheduler.wait_terminal(tasks), scheduler
        assert scheduler.states("as-framework-user")[-1] == "TASK_FINISHED"
        assert scheduler.states("as-command-user")[-1] == "TASK_FINISHED"
        (failed,) = [u for u in scheduler.updates if u.task_id.value == "as-nobody-knows" and corral.is_terminal(u.state)]
        assert corral.state_name(failed.state) == "TASK_FAILED"
        assert "user 'no-such-user-25'" in failed.message and "no such user" in failed.message
        sandboxes = secure.work_dir / "agent-1" / "sandboxes" / scheduler.framework_id
        for task_id, user in (("as-framework-user", "nobody"), ("as-command-user", "daemon")):
            (sandbox,) = (sandboxes / task_id).iterdir()
            assert (sandbox / "stdout").read_text().strip().splitlines()[-2:] == [user, "root"]
            assert sandbox.stat().st_uid == pwd.getpwnam(user).pw_uid
    finally:
        driver.stop()


def test_https_on_the_http_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """--tls-cert/--tls-key: the master and the agent serve HTTPS only; agents and
    drivers find the master at https://HOST:PORT, checking its certificate against
    CORRAL_TLS_CA."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    with LocalCluster(tmp_path / "cluster", agents=1, tls=(cert, key)) as cluster:
        assert cluster.registered_agents() == 1  # the agent found the master over HTTPS
        with pytest.raises((urllib.error.URLError, ConnectionError, http_client.HTTPException)):
            urllib.request.urlopen(f"http://{cluster.master_address}/state", timeout=5).read()
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"https://{cluster.master_address}/state", timeout=5)  # not the system's CAs
        monkeypatch.setenv("CORRAL_TLS_CA", str(cert))
        scheduler = RecordingScheduler([("over-https", "true")])
        driver = corral.SchedulerDriver(scheduler, corral.FrameworkInfo(name="tls", user=""),
                                        cluster.client_env()["CORRAL_MASTER"])
        driver.start()
        try:
            assert scheduler.wait_terminal(["over-https"]), scheduler
        finally:
            driver.stop()
