"""Security and high availability together, with real processes and a real ZooKeeper:
three secured masters (one shared key pair, CurveZMQ on every link, a key ring, HTTP
credentials) elect their leader; the agents and a framework follow it through the zk://
URL and reach whichever master leads with the one master key they were given. The
leader is SIGKILLed: a standby leads, the framework's tasks carry on in the same
processes, a process with an unknown key still gets no agent in, and the principal each
agent was admitted by, kept in the registry in ZooKeeper, is the only one that may
reregister it on the new leader."""
from __future__ import annotations

import http.client
import signal
from pathlib import Path
from typing import Iterator

import pytest

import corral
from corral._core.envelope import Dispatcher, encode
from corral.agent.checkpoint import process_stamp
from corral.net.protocol import MessageType
from corral.net.transport import Transport
from corral.protos import corral_pb2 as pb
from corral.security.keys import generate
from corral.security.links import Credential
from corral.testing.cluster import Daemon, LocalCluster, wait_for

from support import RecordingScheduler

#: short enough for a quick failover, long enough for a loaded 2-core machine
SESSION_TIMEOUT = 4.0
LONG = [f"long-{i}" for i in range(4)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster", agents=2, masters=3, secure=True, zk_session_timeout=SESSION_TIMEOUT,
                      master_flags=["--allocation-interval", "0.2"]) as c:
        yield c


def credential(cluster: LocalCluster, name: str) -> Credential:
    assert cluster.secure is not None
    return Credential.load(cluster.secure.key_of(name), cluster.secure.master_public)


def snapshot(cluster: LocalCluster, master: Daemon) -> dict:
    return cluster.get(master.address, "/metrics/snapshot")


def registered_agents(cluster: LocalCluster, master: Daemon) -> dict[str, str]:
    """Agent id -> transport of the agents registered with `master`."""
    return {a["id"]: a["transport"] for a in cluster.get(master.address, "/state")["agents"]
            if a["state"] == "registered"}


def standby_answer(standby: Daemon, authorization: str | None) -> tuple[int, str | None]:
    """A standby's answer to GET /state (redirects not followed): status, Location."""
    host, port = standby.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", "/state", headers={"Authorization": authorization} if authorization else {})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def task_pid(scheduler: RecordingScheduler, task_id: str) -> int:
    (running,) = [u for u in scheduler.updates if u.task_id.value == task_id and u.state == corral.TASK_RUNNING
                  and u.uuid]
    return int(running.message.split()[1])


def test_secured_masters_fail_over_and_stay_secured(cluster: LocalCluster, tmp_path: Path) -> None:
    assert cluster.secure is not None
    scheduler = RecordingScheduler([(t, "sleep 600") for t in LONG])
    info = corral.FrameworkInfo(name="secure-ha", user="", checkpoint=True, failover_timeout=300.0)
    driver = corral.SchedulerDriver(scheduler, info, cluster.master_url, credential=credential(cluster, "framework"))
    driver.start()
    mallory = Transport("127.0.0.1", 0, Dispatcher(), curve=credential(cluster, "mallory").links())
    rogue: Daemon | None = None
    try:
        assert scheduler.wait(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in LONG), 60), scheduler
        framework_id = scheduler.framework_id
        pids = {t: task_pid(scheduler, t) for t in LONG}
        old = cluster.wait_leader()
        agents = registered_agents(cluster, old)
        # a standby asks for credentials too, before it sends the caller to the leader
        standby = next(m for m in cluster.masters if m is not old)
        assert standby_answer(standby, None)[0] == 401
        assert standby_answer(standby, cluster.secure.authorization()) == (307, f"http://{old.address}/state")
        assert len(agents) == 2
        # agent-2 is frozen through the failover: the new leader knows it only from the
        # registry until it is back
        frozen = cluster.agents[1]
        frozen_id = next(a for a, transport in agents.items() if transport == frozen.transport)
        frozen.signal(signal.SIGSTOP)

        old.kill()
        new = cluster.wait_leader(timeout=60, other_than=old)
        wait_for(lambda: len(registered_agents(cluster, new)) == 1, 60, "agent-1 to reregister with the new leader")

        # a known principal that is not the one agent-2 was admitted by cannot take its id
        denied = snapshot(cluster, new).get("master/denied/register_agents", 0)
        body = pb.ReregisterAgent(agent=pb.AgentInfo(hostname="mallory", id=pb.AgentID(value=frozen_id),
                                                     resources=corral.Resources.parse("cpus:8;mem:8192").to_protos()))
        mallory.send_frame(new.transport, encode(int(MessageType.REREGISTER_AGENT), 1, mallory.address.encode(),
                                                 body.SerializeToString()))
        wait_for(lambda: snapshot(cluster, new).get("master/denied/register_agents", 0) > denied, 20,
                 "mallory's reregistration refused")
        assert f"refused agent {frozen_id} reregistering" in new.log_tail(400)
        assert frozen_id not in registered_agents(cluster, new)

        # a process whose key the ring does not hold gets no agent in on the new leader
        refused = snapshot(cluster, new).get("transport/curve_refused", 0)
        (public,) = generate(tmp_path / "rogue-keys", ["rogue-agent"])
        rogue = Daemon("rogue-agent", [*cluster._base, "agent", "--master", cluster.master_url, "--port", "0",
                                       "--work-dir", str(tmp_path / "rogue-agent"), "--resources", "cpus:8;mem:8192",
                                       "--key", f"{public}_secret", "--master-key", str(cluster.secure.master_public)],
                       tmp_path / "rogue-agent", cluster.env)
        rogue.start()
        wait_for(lambda: snapshot(cluster, new).get("transport/curve_refused", 0) > refused, 30,
                 "the rogue agent's handshake refused by the new leader")
        assert "unknown CurveZMQ key" in new.log_tail(400)

        # agent-2, back under its own principal, is taken back
        frozen.signal(signal.SIGCONT)
        wait_for(lambda: len(registered_agents(cluster, new)) == 2, 60, "agent-2 to reregister")
        assert set(registered_agents(cluster, new)) == set(agents)
        # the framework resubscribed, its tasks never stopped, and it runs new ones
        wait_for(lambda: [f["id"] for f in cluster.get(new.address, "/state")["frameworks"] if f["connected"]]
                 == [framework_id], 60, "the framework to resubscribe")
        for t in LONG:
            assert process_stamp(pids[t]) is not None
            assert [corral.state_name(u.state) for u in scheduler.updates
                    if u.task_id.value == t and u.uuid] == ["TASK_STARTING", "TASK_RUNNING"]
        with scheduler.cond:
            scheduler.pending.append(("after-failover", "echo after"))
        driver.revive_offers()
        assert scheduler.wait_terminal(["after-failover"], 60), scheduler
        assert scheduler.states("after-failover")[-1] == "TASK_FINISHED"
        tasks = {t["id"]: t["state"] for f in cluster.get(new.address, "/state")["frameworks"] for t in f["tasks"]}
        assert {t: tasks.get(t) for t in LONG} == dict.fromkeys(LONG, "TASK_RUNNING")
        assert len(registered_agents(cluster, new)) == 2  # the rogue never got in
    finally:
        if cluster.agents[1].alive():
            cluster.agents[1].signal(signal.SIGCONT)
        if rogue is not None:
            rogue.stop()
        mallory.close()
        driver.stop()


def test_corral_local_secure_with_three_masters_runs_the_example_framework(tmp_path: Path) -> None:
    """`corral local --secure --masters 3 --run ...`: the driver gets the zk:// URL and
    the keys, and finds the leader."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "hello_framework.py"
    result = subprocess.run([sys.executable, "-m", "corral", "local", "--secure", "--masters", "3", "--agents", "1",
                             "--port", "0", "--work-dir", str(tmp_path), "--run", f"{sys.executable} {example}"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "secured: keys in" in result.stdout and "4/4 tasks finished" in result.stdout
    assert "zk://" in result.stdout
    # one key pair for the masters: the ring admits the agent and the framework only
    assert sorted(p.name for p in (tmp_path / "security" / "keys" / "ring").iterdir()) == ["agent-1.key",
                                                                                           "framework.key"]
