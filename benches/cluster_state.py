"""Builders shared by the master benches: a `MasterEngine` holding N active tasks, put
there through the protocol (agents register, the framework subscribes, the allocator
offers, the framework accepts, the agents report TASK_RUNNING and the framework
acknowledges), every message round-tripped through the wire format first, so the master
holds what it would hold in production (parsed TaskInfos, last statuses, Resources).

Not a bench itself (pytest collects `bench_*.py` only).
"""
from __future__ import annotations

import math
import os

from corral.engines.base import Send
from corral.engines.master import MasterConfig, MasterEngine
from corral.engines.status import row_of
from corral.protos import corral_pb2 as pb
from corral.net.wire import Acknowledge, StatusUpdateMessage
from corral.resources import Resources
from corral.tasks import command_task

MASTER = "tcp://127.0.0.1:5050"
SCHEDULER = "tcp://127.0.0.1:6060"
#: tasks per agent (so 100k tasks live on 100 agents)
PER_AGENT = 1000
TASK_RESOURCES = "cpus:0.01;mem:1"


def wire(body):
    return type(body).FromString(body.SerializeToString())


def sends(master: MasterEngine, kind: type | None = None) -> list[tuple[str, object]]:
    return [(a.to, a.body) for a in master.take_actions()
            if isinstance(a, Send) and (kind is None or isinstance(a.body, kind))]


def new_master() -> MasterEngine:
    info = pb.MasterInfo(id="m1", hostname="master", port=5050, transport=MASTER)
    # timers far away: the benches drive the master by messages only
    config = MasterConfig(allocation_interval=1.0, ping_interval=1e9)
    return MasterEngine(info, config, now=0.0)


def build_master(n_tasks: int, scheduler: str = SCHEDULER, per_agent: int = PER_AGENT,
                 running: bool = True, master: MasterEngine | None = None) -> tuple[MasterEngine, str, list[tuple[str, str]]]:
    """A master (`master`, or a new one) with `n_tasks` active tasks of one framework
    served at `scheduler`. Returns (master, framework id, [(task id, agent id)]). The
    agents' addresses are on loopback (a master daemon serving this state sends to
    nobody else)."""
    m = master or new_master()
    m.handle(scheduler, wire(pb.Subscribe(framework_info=pb.FrameworkInfo(user="bench", name="bench"),
                                          transport=scheduler)), 0.0)
    (_, subscribed), = sends(m, pb.Subscribed)
    fid = subscribed.framework_id.value
    n_agents = max(1, math.ceil(n_tasks / per_agent))
    scalars = Resources.parse(TASK_RESOURCES)
    total = Resources.parse(f"cpus:{scalars.cpus * per_agent:.2f};mem:{scalars.mem * per_agent:.0f}")
    agent_transport: dict[str, str] = {}
    for i in range(n_agents):
        address = f"tcp://127.0.{i // 250}.{i % 250 + 1}:5051"
        m.handle(address, wire(pb.RegisterAgent(agent=pb.AgentInfo(hostname=f"agent{i}", resources=total.to_protos()))), 0.0)
        (_, reply), = sends(m, pb.AgentRegistered)
        agent_transport[reply.agent_id.value] = address
    m.tick(1.0)  # one allocation cycle: one offer per agent
    offers = [o for _, msg in sends(m, pb.Offers) for o in msg.offers]
    assert len(offers) == n_agents, (len(offers), n_agents)
    tasks: list[tuple[str, str]] = []
    left = n_tasks
    for offer in offers:
        aid = offer.agent_id.value
        count = min(per_agent, left)
        left -= count
        infos = [command_task(f"task-{len(tasks) + j}", "sleep 1000", aid, TASK_RESOURCES,
                              task_id=f"task-{len(tasks) + j}") for j in range(count)]
        accept = pb.Accept(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id])
        op = accept.operations.add(type=pb.Offer.Operation.LAUNCH)
        op.launch.task_infos.extend(infos)
        m.handle(scheduler, wire(accept), 1.0)
        tasks.extend((t.task_id.value, aid) for t in infos)
    m.take_actions()
    assert len(m.frameworks[fid].tasks) == n_tasks, "every launch was accepted"
    if running:
        for i, (tid, aid) in enumerate(tasks):
            uuid = os.urandom(16)
            update = pb.StatusUpdate(timestamp=2.0, uuid=uuid)
            update.framework_id.value = fid
            update.agent_id.value = aid
            update.status.task_id.value = tid
            update.status.state = pb.TASK_RUNNING
            update.status.source = pb.TaskStatus.SOURCE_EXECUTOR
            update.status.uuid = uuid
            update.status.timestamp = 2.0
            update.status.agent_id.value = aid
            update.status.executor_id.value = tid
            update.latest_state = pb.TASK_RUNNING
            m.handle(agent_transport[aid], wire(StatusUpdateMessage([row_of(update)])), 2.0)
            m.handle(scheduler, wire(Acknowledge(fid, [(aid, tid, uuid)])), 2.0)
            if i % 1000 == 999:
                m.take_actions()
        m.take_actions()
    return m, fid, tasks


def reconcile_call(fid: str, tasks: list[tuple[str, str]]) -> pb.Reconcile:
    msg = pb.Reconcile(framework_id=pb.FrameworkID(value=fid))
    for tid, aid in tasks:
        entry = msg.tasks.add()
        entry.task_id.value = tid
        entry.agent_id.value = aid
    return msg
