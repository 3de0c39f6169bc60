"""What a principal sees of the master under the view ACLs (view_frameworks, view_tasks,
by the framework's user), without processes: the event stream sends each subscriber
only the events of frameworks and tasks its principal may view (agents and heartbeats
to everyone), its SUBSCRIBED state is that principal's, /tasks lists only visible tasks,
and asking for an invisible task by name is a counted denial."""
from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest

from corral.engines.authorization import Denied
from corral.engines.master import MasterConfig, MasterEngine
from corral.engines.master.snapshot import check_task_view, state_view, tasks_view
from corral.master.events import EventStream, Subscriber
from corral.net.http import REQUEST_PRINCIPAL
from corral.protos import corral_pb2 as pb
from corral.security.acls import Acls

from engine_helpers import accept, bodies, command_task, feed, offers, register_agent, status_update

MASTER = "tcp://master"
ACLS = {
    "permissive": False,
    "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}],
    "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
    "run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
    "view_frameworks": [
        {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
        {"principals": {"values": ["alice-eyes", "alice-names"]}, "users": {"values": ["alice"]}},
    ],
    "view_tasks": [
        {"principals": {"values": ["ops", "alice-eyes"]}, "users": {"type": "ANY"}},
    ],
}


def master_with(acls: dict | None) -> MasterEngine:
    info = pb.MasterInfo(id="m1", hostname="master", port=5050, transport=MASTER)
    return MasterEngine(info, MasterConfig(), now=0.0, acls=Acls.parse(acls) if acls is not None else None)


def subscribe(master: MasterEngine, address: str, user: str, now: float) -> str:
    feed(master, address, pb.Subscribe(framework_info=pb.FrameworkInfo(user=user, name=user), transport=address), now)
    (reply,) = bodies(master, pb.Subscribed, to=address)
    return reply.framework_id.value


def launch(master: MasterEngine, fid: str, address: str, aid: str, task_id: str, now: float) -> None:
    (offer,) = offers(master, now, to=address)
    feed(master, address, accept(fid, [offer.id.value], [command_task(task_id, aid, "cpus:0.5;mem:64")], 0.0), now)


def stream_of(master: MasterEngine) -> EventStream:
    """The daemon's event stream on `master`; its clock moves on a minute per reading, so
    that every take refreshes agents and frameworks and sends a heartbeat."""
    clock = itertools.count(0.0, 60.0)
    return EventStream(master, threading.RLock(), lambda: state_view(master, REQUEST_PRINCIPAL.get()),
                       clock=lambda: next(clock))


def events(chunks: list[bytes]) -> list[tuple[str, Any]]:
    out = []
    for chunk in chunks:
        name, data = chunk.decode().split("\n")[:2]
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def task_ids(evs: list[tuple[str, Any]]) -> set[str]:
    ids = set()
    for name, data in evs:
        if name == "TASK_ADDED":
            ids |= {t["id"] for t in data["tasks"]}
        elif name == "TASK_UPDATED":
            ids |= {entry[0] for entry in data["tasks"]}
    return ids


def framework_names(evs: list[tuple[str, Any]]) -> set[str]:
    return {data["framework"]["name"] for name, data in evs if name.startswith("FRAMEWORK_")}


@pytest.fixture
def cluster():
    """A master under ACLS with one agent and the frameworks of alice and bob, and a
    subscriber for each kind of principal (subscribed before anything happened)."""
    master = master_with(ACLS)
    aid = register_agent(master, "tcp://agent1", "cpus:4;mem:4096")
    stream = stream_of(master)
    subscribers = {p: Subscriber(p) for p in ("ops", "alice-eyes", "alice-names", "stranger")}
    firsts = {p: stream.subscribe(s) for p, s in subscribers.items()}
    stream.take()
    alice = subscribe(master, "tcp://alice", "alice", 1.0)
    bob = subscribe(master, "tcp://bob", "bob", 1.0)
    launch(master, alice, "tcp://alice", aid, "a1", 2.0)
    launch(master, bob, "tcp://bob", aid, "b1", 3.0)
    return master, stream, subscribers, firsts, aid, alice, bob


def test_each_subscriber_gets_the_events_its_principal_may_view(cluster):
    master, stream, subscribers, _firsts, aid, alice, bob = cluster
    by_principal, listed = stream.take()
    assert set(listed) == set(subscribers.values())
    seen = {p: events(chunks) for p, chunks in by_principal.items()}
    assert task_ids(seen["ops"]) == {"a1", "b1"} and framework_names(seen["ops"]) == {"alice", "bob"}
    assert task_ids(seen["alice-eyes"]) == {"a1"} and framework_names(seen["alice-eyes"]) == {"alice"}
    assert task_ids(seen["alice-names"]) == set() and framework_names(seen["alice-names"]) == {"alice"}
    assert task_ids(seen["stranger"]) == set() and framework_names(seen["stranger"]) == set()
    for evs in seen.values():  # agents and heartbeats are everyone's
        assert any(name == "HEARTBEAT" for name, _ in evs)
        assert any(name == "AGENT_UPDATED" and data["agent"]["id"] == aid for name, data in evs)

    feed(master, "tcp://agent1", status_update(alice, aid, "a1", pb.TASK_RUNNING, b"u1"), 4.0)
    feed(master, "tcp://agent1", status_update(bob, aid, "b1", pb.TASK_RUNNING, b"u2"), 4.0)
    by_principal, _ = stream.take()
    updated = {p: [d for n, d in events(c) if n == "TASK_UPDATED"] for p, c in by_principal.items()}
    assert sorted(d["framework_id"] for d in updated["ops"]) == sorted([alice, bob])
    assert [d["framework_id"] for d in updated["alice-eyes"]] == [alice]
    assert updated["alice-names"] == [] and updated["stranger"] == []


def test_the_subscribed_state_is_the_principals_own(cluster):
    master, stream, subscribers, _firsts, *_ = cluster

    def first_state(principal: str) -> dict:
        ((name, data),) = events([stream.subscribe(Subscriber(principal))])
        assert name == "SUBSCRIBED"
        return data["state"]

    ops = first_state("ops")
    assert sorted(f["name"] for f in ops["frameworks"]) == ["alice", "bob"]
    eyes = first_state("alice-eyes")
    assert [(f["name"], [t["id"] for t in f["tasks"]]) for f in eyes["frameworks"]] == [("alice", ["a1"])]
    names = first_state("alice-names")
    assert [(f["name"], f["tasks"]) for f in names["frameworks"]] == [("alice", [])]
    assert first_state("stranger")["frameworks"] == []
    assert len(first_state("stranger")["agents"]) == 1


def test_tasks_lists_only_visible_tasks_and_naming_one_is_a_counted_denial(cluster):
    master, *_rest, alice, bob = cluster
    assert sorted(t["id"] for t in tasks_view(master, None, "", True, "ops")) == ["a1", "b1"]
    assert [t["id"] for t in tasks_view(master, None, "", True, "alice-eyes")] == ["a1"]
    assert tasks_view(master, None, "", True, "alice-names") == []
    assert tasks_view(master, bob, "", False, "alice-eyes") == []
    task, _ = master.find_task(None, "b1")
    check_task_view(master, task, "ops")
    with pytest.raises(Denied, match="principal 'alice-eyes' is not authorized to view_frameworks for user 'bob'"):
        check_task_view(master, task, "alice-eyes")
    with pytest.raises(Denied, match="principal 'alice-names' is not authorized to view_tasks for user 'alice'"):
        check_task_view(master, master.find_task(None, "a1")[0], "alice-names")
    assert master.authorizer.denials == {"view_frameworks": 1, "view_tasks": 1}


def test_without_acls_every_subscriber_gets_every_event():
    master = master_with(None)
    aid = register_agent(master, "tcp://agent1", "cpus:4;mem:4096")
    stream = stream_of(master)
    for principal in ("ops", None):
        stream.subscribe(Subscriber(principal))
    stream.take()
    fid = subscribe(master, "tcp://alice", "alice", 1.0)
    launch(master, fid, "tcp://alice", aid, "a1", 2.0)
    by_principal, _ = stream.take()
    assert by_principal["ops"] is by_principal[None]  # one list, encoded once
    assert task_ids(events(by_principal[None])) == {"a1"}
