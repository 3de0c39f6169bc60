"""Shared builders for the engine unit tests: engines fed by hand, their outbox read
back, every message round-tripped through the wire format first."""
from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.message import Message

from corral.net import wire
from corral.engines.base import Engine, Send
from corral.engines.master import MasterConfig, MasterEngine
from corral.engines.status import row_of, update_of
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

M = TypeVar("M", bound=Message)
U = TypeVar("U", bound=wire.UpdateMessage)

MASTER = "tcp://master"


def roundtrip(body: M) -> M:
    """`body` as the receiver would see it."""
    return type(body).FromString(body.SerializeToString())


def feed(engine: Engine, sender: str, body: Message, now: float) -> None:
    engine.handle(sender, roundtrip(body), now)


def sent(engine: Engine, kind: type[M] | None = None, to: str | None = None) -> list[tuple[str, M]]:
    """Take the engine's actions; the Sends of `kind` (to `to`) as (to, body)."""
    out = []
    for action in engine.take_actions():
        if isinstance(action, Send) and (kind is None or isinstance(action.body, kind)) and (to is None or action.to == to):
            out.append((action.to, roundtrip(action.body)))
    return out


def bodies(engine: Engine, kind: type[M], to: str | None = None) -> list[M]:
    return [b for _, b in sent(engine, kind, to)]


def status_updates(engine: Engine, to: str | None = None) -> list[pb.StatusUpdate]:
    """Take the engine's actions; the status updates it sent (to `to`) in Updates
    messages, one by one, in order."""
    return [u for _, body in sent(engine, wire.Updates, to) for u in updates_in(body)]


def wire_updates(cls: type[U], *updates: pb.StatusUpdate) -> U:
    """A `corral.net.wire` update message of `cls` carrying `updates` (each with its
    latest_state, or its own state)."""
    return cls([row_of(u) for u in updates])


def updates_in(msg: Any) -> list[pb.StatusUpdate]:
    """The updates a `corral.net.wire` update message carries, as whole StatusUpdates."""
    return [update_of(row, latest_state=row[7]) for row in msg.rows]


def others(actions: list[Any], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def resources(text: str) -> list[pb.Resource]:
    return Resources.parse(text).to_protos()


def framework_info(name: str = "fw", *, partition_aware: bool = False, failover_timeout: float = 0.0,
                   framework_id: str | None = None, role: str = "") -> pb.FrameworkInfo:
    info = pb.FrameworkInfo(user="u", name=name, failover_timeout=failover_timeout)
    if role:
        info.role = role
    if partition_aware:
        info.capabilities.add(type=pb.FrameworkInfo.Capability.PARTITION_AWARE)
    if framework_id:
        info.id.value = framework_id
    return info


def new_master(**config: Any) -> MasterEngine:
    info = pb.MasterInfo(id="m1", hostname="master", port=5050, transport=MASTER)
    return MasterEngine(info, MasterConfig(**config), now=0.0)


def register_agent(master: MasterEngine, address: str = "tcp://agent1", res: str = "cpus:4;mem:4096",
                   now: float = 0.0) -> str:
    feed(master, address, pb.RegisterAgent(agent=pb.AgentInfo(hostname=address, resources=resources(res))), now)
    (reply,) = bodies(master, pb.AgentRegistered, to=address)
    return reply.agent_id.value


def subscribe(master: MasterEngine, address: str = "tcp://sched1", now: float = 0.0, **info: Any) -> str:
    feed(master, address, pb.Subscribe(framework_info=framework_info(**info), transport=address), now)
    (reply,) = bodies(master, pb.Subscribed, to=address)
    return reply.framework_id.value


def advance(engine: Engine, now: float) -> None:
    """Fire every timer due up to `now`, each at its own deadline, then tick at `now`."""
    while (deadline := engine.next_deadline()) is not None and deadline < now:
        engine.tick(deadline)
    engine.tick(now)


def offers(master: MasterEngine, now: float, to: str | None = None) -> list[pb.Offer]:
    """Run the master's timers up to `now` (the allocator runs every second); the
    offers it made meanwhile (to `to`)."""
    advance(master, now)
    return [o for msg in bodies(master, pb.Offers, to=to) for o in msg.offers]


def command_task(task_id: str, agent_id: str, res: str = "cpus:1;mem:128", command: str = "exit 0") -> pb.TaskInfo:
    task = pb.TaskInfo(name=task_id, resources=resources(res))
    task.task_id.value = task_id
    task.agent_id.value = agent_id
    task.command.value = command
    return task


def accept(framework_id: str, offer_ids: list[str], tasks: list[pb.TaskInfo],
           refuse_seconds: float | None = None) -> pb.Accept:
    msg = pb.Accept(framework_id=pb.FrameworkID(value=framework_id))
    for oid in offer_ids:
        msg.offer_ids.add(value=oid)
    op = msg.operations.add(type=pb.Offer.Operation.LAUNCH)
    op.launch.task_infos.extend(tasks)
    if refuse_seconds is not None:
        msg.filters.refuse_seconds = refuse_seconds
    return msg


def status_update(framework_id: str, agent_id: str, task_id: str, state: int, uuid: bytes,
                  latest: int | None = None, now: float = 0.0) -> wire.StatusUpdateMessage:
    update = pb.StatusUpdate(timestamp=now, uuid=uuid)
    update.framework_id.value = framework_id
    update.agent_id.value = agent_id
    update.status.task_id.value = task_id
    update.status.state = state
    update.status.uuid = uuid
    update.status.agent_id.value = agent_id
    update.status.source = pb.TaskStatus.SOURCE_EXECUTOR
    if latest is not None:
        update.latest_state = latest
    return wire_updates(wire.StatusUpdateMessage, update)
