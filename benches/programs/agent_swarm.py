"""Plays many agents in one process over real ZeroMQ, for benches/bench_ha.py's failover
at scale.

usage: agent_swarm.py MASTER_URL AGENTS

AGENTS agent identities, each with a PULL socket of its own on loopback (its transport
address: where masters send to it); what they send goes through one PUSH socket to the
leading master's transport, each envelope naming its identity as the sender. The swarm
follows the leader through MASTER_URL (a zk:// URL, corral's ZooKeeperDetector). For
each leader it (re)registers every identity, RegisterAgent before it has an id and
ReregisterAgent with it after, on a real agent's registration backoff (the first wait
uniform in [0, 1 s), each next bound twice as long, up to 60 s); it answers pings.
It runs no executors and holds no tasks.

Prints JSON lines on stdout: {"leader": TRANSPORT, "at": T} for each leader it finds,
{"registered": N, "leader": TRANSPORT, "at": T} once all N identities are registered
with that leader (T: wall-clock time). Runs until killed.
"""
from __future__ import annotations

import heapq
import json
import os
import queue
import sys
import time

import zmq

from corral._core.envelope import BATCH_TYPE, decode, encode, encode_batch
from corral.engines.backoff import Backoff, Jitter, Retry
from corral.net.protocol import BODY_CLASS, TYPE_NUMBER, MessageType
from corral.net.transport import context
from corral.net.zookeeper import parse_zk_url
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.runtime.detector import ZooKeeperDetector

#: a real agent's registration backoff (corral.engines.agent.AgentConfig's defaults)
REGISTRATION = Backoff(1.0, 60.0, jitter=Jitter.FULL)
HEADER = len(encode_batch([]))


def envelopes(frame: bytes):
    """The envelopes in one frame (a batch frame carries several)."""
    envelope = decode(frame)
    if envelope.type != BATCH_TYPE:
        yield envelope
        return
    pos = HEADER
    while pos < len(frame):
        size = int.from_bytes(frame[pos:pos + 4], "little")
        yield decode(frame[pos + 4:pos + 4 + size])
        pos += 4 + size


def emit(**event) -> None:
    print(json.dumps(event), flush=True)


def main(url: str, count: int) -> None:
    ctx = context()
    pulls = []
    for _ in range(count):
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind_to_random_port("tcp://127.0.0.1")
        pulls.append(sock)
    addresses = [s.getsockopt_string(zmq.LAST_ENDPOINT) for s in pulls]
    index = {sock: i for i, sock in enumerate(pulls)}
    poller = zmq.Poller()
    for sock in pulls:
        poller.register(sock, zmq.POLLIN)
    resources = Resources.parse("cpus:1;mem:1024;disk:1024").to_protos()
    session = os.urandom(8)
    agent_ids: list[str | None] = [None] * count

    leaders: queue.SimpleQueue[str] = queue.SimpleQueue()
    detector = ZooKeeperDetector(parse_zk_url(url), leaders.put)
    detector.detect()
    leader = ""
    push = None
    pending: set[int] = set()
    due: list[tuple[float, int]] = []
    retries: list[Retry] = []
    seq = 0

    def send(i: int, body) -> None:
        nonlocal seq
        seq += 1
        push.send(encode(TYPE_NUMBER[type(body)], seq, addresses[i].encode(), body.SerializeToString()))

    while True:
        while True:
            try:
                found = leaders.get_nowait()
            except queue.Empty:
                break
            if found == leader:
                continue
            leader = found
            emit(leader=leader, at=time.time())
            if push is not None:
                push.close(linger=0)
            push = ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.SNDHWM, 0)
            push.connect(leader)
            now = time.monotonic()
            pending = set(range(count))
            retries = [REGISTRATION.retry() for _ in range(count)]
            due = [(retries[i].next_deadline(now), i) for i in range(count)]
            heapq.heapify(due)
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, i = heapq.heappop(due)
            if i not in pending:
                continue
            info = pb.AgentInfo(hostname=f"swarm-{i}", resources=resources, transport=addresses[i])
            if agent_ids[i] is None:
                send(i, pb.RegisterAgent(agent=info, version="swarm", session=session + i.to_bytes(4, "big")))
            else:
                info.id.value = agent_ids[i]
                send(i, pb.ReregisterAgent(agent=info, version="swarm"))
            heapq.heappush(due, (retries[i].next_deadline(now), i))
        wait = 50 if not due else max(0, min(50, int((due[0][0] - time.monotonic()) * 1000)))
        for sock, _ in poller.poll(wait):
            i = index[sock]
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                for envelope in envelopes(frame):
                    kind = MessageType(envelope.type)
                    if kind in (MessageType.AGENT_REGISTERED, MessageType.AGENT_REREGISTERED):
                        if envelope.sender.decode() != leader:
                            continue  # a late answer from a master that no longer leads
                        reply = BODY_CLASS[kind].FromString(envelope.body)
                        agent_ids[i] = reply.agent_id.value
                        if i in pending:
                            pending.discard(i)
                            if not pending:
                                emit(registered=count, leader=leader, at=time.time())
                    elif kind is MessageType.PING and agent_ids[i] is not None and envelope.sender.decode() == leader:
                        send(i, pb.Pong(agent_id=pb.AgentID(value=agent_ids[i])))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
