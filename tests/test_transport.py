"""The transport under socket churn: peers come and go many times in one process (as
agents, executors and schedulers do for a long-running master) and every new connection
still delivers and reports itself."""
from __future__ import annotations

import subprocess
import sys


CHURN_PROGRAM = """
import os
import time
from corral._core.envelope import Dispatcher
from corral.net.protocol import PeerEvent
from corral.net.transport import Transport

fds_before = len(os.listdir("/proc/self/fd"))
for round_ in range(40):
    got = []
    events = []
    receiver_dispatch = Dispatcher()
    receiver_dispatch.register(58, lambda env: got.append(1))
    receiver = Transport("127.0.0.1", 0, receiver_dispatch, on_peer=lambda a, e: None)
    sender = Transport("127.0.0.1", 0, Dispatcher(), on_peer=lambda a, e: events.append(e))
    for _ in range(20):
        assert sender.send(receiver.address, 58, b"x")
    deadline = time.monotonic() + 5
    while (len(got) < 20 or PeerEvent.CONNECTED not in events) and time.monotonic() < deadline:
        if receiver.wait(0.05):
            receiver.drain()
        sender.wait(0)  # reads the sender's monitor events
    assert len(got) == 20, f"round {round_}: {len(got)} of 20 delivered"
    assert PeerEvent.CONNECTED in events, f"round {round_}: no connection event"
    sender.close()
    receiver.close()
print(fds_before, len(os.listdir("/proc/self/fd")))
"""


def test_new_connections_keep_working_after_many_closed_ones() -> None:
    # its own process: file descriptors other tests' threads (ZooKeeper clients, say)
    # open or close meanwhile must not count
    result = subprocess.run([sys.executable, "-c", CHURN_PROGRAM], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    fds_before, fds_after = map(int, result.stdout.split())
    # closed sockets and their monitors are really gone
    assert fds_after < fds_before + 30, result.stdout


PEERS_PROGRAM = """
import sys
from corral._core.envelope import Dispatcher
from corral.net.transport import Transport

# a master talking to 700 agents: a PUSH socket and its monitor each (1400 ZeroMQ
# sockets, past libzmq's default limit of 1023)
sender = Transport("127.0.0.1", 0, Dispatcher(), on_peer=lambda a, e: None)
for port in range(1, 701):
    sender.send(f"tcp://127.0.0.1:{port}", 58, b"x")
print(sender.counters.sent, sender.counters.dropped)
sender.close()
"""


def test_a_transport_talks_to_more_peers_than_zeromqs_default_socket_limit() -> None:
    result = subprocess.run([sys.executable, "-c", PEERS_PROGRAM], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["700", "0"], result.stdout + result.stderr[-2000:]
