"""The store as real processes: three nodes on loopback, a pipelined client, SIGKILL of
a node in the middle of writes, and the command line."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from corral.examples.cassandra.client import Client, NoHostAvailable, Unavailable
from corral.examples.cassandra.testing import LocalRing, free_port
from corral.testing.cluster import wait_for

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "corral.examples.cassandra"]


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    with LocalRing(tmp_path_factory.mktemp("ring"), 3) as r:
        yield r


def test_quorum_writes_read_back_at_every_level_from_every_coordinator(ring):
    with ring.client() as client:
        items = [(b"q%d" % i, b"value-%d" % i) for i in range(2000)]
        assert client.put_many(items) == [None] * len(items)
        for level in ("ONE", "QUORUM", "ALL"):
            assert client.get_many([k for k, _ in items], consistency=level) == [v for _, v in items]
        client.delete(b"q0")
        assert client.get(b"q0", consistency="ALL") is None
    for address in ring.addresses:  # each node alone, at ONE, serves from its own replica (RF 3 of 3)
        with Client([address], token_aware=False, consistency="ONE") as one:
            assert one.get(b"q1999") == b"value-1999"


def test_a_node_killed_with_sigkill_loses_no_acknowledged_write(ring):
    victim = ring.nodes[1]
    acked: list[int] = []
    stop = threading.Event()

    def write() -> None:
        with ring.client(consistency="ALL", attempts=1, request_timeout=2.0) as client:
            i = 0
            while not stop.is_set() and i < 20000:
                batch = [(b"s%d" % j, b"v%d" % j) for j in range(i, i + 200)]
                for j, error in zip(range(i, i + 200), client.put_many(batch)):
                    if error is None:
                        acked.append(j)
                i += 200

    writer = threading.Thread(target=write)
    writer.start()
    wait_for(lambda: len(acked) >= 1000, 60, "1000 acknowledged writes")
    victim.kill()
    stop.set()
    writer.join(60)
    assert acked
    ring.restart(1)
    ring.wait_normal()
    # every write acknowledged at ALL was acknowledged by the victim itself
    with Client([victim.address], token_aware=False, consistency="ONE") as one:
        values = one.get_many([b"s%d" % j for j in acked])
    errors = {str(v) for v in values if not isinstance(v, (bytes, type(None)))}
    assert not errors, errors
    missing = [j for j, v in zip(acked, values) if v != b"v%d" % j]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"


def test_the_command_line_writes_reads_deletes_and_shows_the_ring(ring):
    contact = ["--contact", ring.addresses[0]]
    run = lambda *args: subprocess.run([*CLI, "client", *contact, *args], capture_output=True, text=True, timeout=60)
    assert run("put", "greeting", "hello").stdout.strip() == "OK"
    got = subprocess.run([*CLI, "client", *contact, "--consistency", "ALL", "get", "greeting"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and got.stdout.strip() == "hello"
    assert run("delete", "greeting").returncode == 0
    missing = run("get", "greeting")
    assert missing.returncode == 1 and "no value" in missing.stderr
    shown = run("ring")
    assert shown.returncode == 0
    lines = [l for l in shown.stdout.splitlines() if l.startswith("UN")]
    assert sorted(l.split()[1] for l in lines) == ["node-0", "node-1", "node-2"]
    assert all("100.0%" in l for l in lines)  # RF 3 on 3 nodes: each holds everything


def test_bad_input_gets_a_clear_error(ring, tmp_path):
    bad_level = subprocess.run([*CLI, "client", "--contact", ring.addresses[0], "--consistency", "TWO", "get", "k"],
                               capture_output=True, text=True, timeout=60)
    assert bad_level.returncode == 2 and "unknown consistency level 'TWO'" in bad_level.stderr
    port = free_port()
    nobody = subprocess.run([*CLI, "client", "--contact", f"127.0.0.1:{port}", "get", "k"],
                            capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 2 and f"no node answered among 127.0.0.1:{port}" in nobody.stderr
    with pytest.raises(NoHostAvailable, match=f"127.0.0.1:{port}"):
        Client([f"127.0.0.1:{port}"], connect_timeout=0.5)
    with pytest.raises(ValueError, match="invalid node address 'nohost'"):
        Client(["nohost"])
    bad_listen = subprocess.run([*CLI, "node", "--name", "x", "--listen", "here", "--data", str(tmp_path)],
                                capture_output=True, text=True, timeout=60)
    assert bad_listen.returncode == 2 and "invalid node address 'here'" in bad_listen.stderr
    unknown = subprocess.run([*CLI, "client", "--contact", ring.addresses[0], "repair", "node-9"],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown node 'node-9'" in unknown.stderr


def test_quorum_is_unavailable_with_two_of_three_nodes_down_and_served_again_after(ring):
    ring.kill(1)
    ring.kill(2)
    wait_for(lambda: ring.states(ring.nodes[0].address).get("node-2") == "DN"
             and ring.states(ring.nodes[0].address).get("node-1") == "DN", 60, "node-1 and node-2 DN")
    with Client([ring.nodes[0].address], token_aware=False) as client:
        with pytest.raises(Unavailable, match="needs 2 live replicas"):
            client.put(b"u", b"v")
        client.put(b"u", b"one", consistency="ONE")
    ring.restart(1)
    ring.restart(2)
    ring.wait_normal()
    with ring.client() as client:
        assert client.get(b"u", consistency="ALL") == b"one"  # hinted (or read-repaired) onto the others
