"""What the master shows of itself: JSON-able views of its agents, frameworks, tasks and
their statuses, and of the whole master (`/state`, the event stream, the CLI and the web
UI read these). Views are plain functions of the engine's records, read under the
daemon's runtime lock; none of them changes anything."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from google.protobuf.json_format import MessageToDict

from corral.engines.agent import persistent_volumes
from corral.engines.master.records import Agent, Framework, Task
from corral.protos import corral_pb2 as pb
from corral.resources import Resources, attributes_to_dict
from corral.security.acls import Action

if TYPE_CHECKING:
    from corral.engines.master.engine import MasterEngine


class SnapshotMixin:
    """The master engine's view of itself (a part of `MasterEngine`)."""

    def snapshot(self, viewer: str | None = None) -> dict[str, Any]:
        """A JSON-able view of the whole master (the /state endpoint), as `viewer` (the
        HTTP principal) may see it: the frameworks the ACLs' view_frameworks and the
        tasks their view_tasks let it see, by the framework's user."""
        return state_view(self, viewer)  # type: ignore[arg-type]


#: state number -> name, reason number -> name, source number -> name (a dict lookup
#: instead of protobuf's enum lookup: views of 100 000 tasks make many)
STATE_NAMES = {v.number: v.name for v in pb.TaskState.DESCRIPTOR.values}
REASON_NAMES = {v.number: v.name for v in pb.TaskStatus.Reason.DESCRIPTOR.values}
SOURCE_NAMES = {v.number: v.name for v in pb.TaskStatus.Source.DESCRIPTOR.values}


# ---------------------------------------------------------------------- statuses
def status_view(data: bytes) -> dict[str, Any]:
    """One entry of a task's history, from the serialised TaskStatus the master kept."""
    status = pb.TaskStatus.FromString(data)
    return {
        "state": STATE_NAMES.get(status.state, str(status.state)),
        "timestamp": status.timestamp,
        "source": SOURCE_NAMES.get(status.source, ""),
        "reason": REASON_NAMES.get(status.reason, "") if status.HasField("reason") else "",
        "message": status.message,
        "healthy": status.healthy if status.HasField("healthy") else None,
        "executor_id": status.executor_id.value,
    }


def sandbox_path(framework_id: str, executor_id: str, container_id: str) -> str:
    """A run's sandbox, relative to its agent's sandboxes folder (what the agent's
    `/files/browse` and `/files/read` take)."""
    return f"{framework_id}/{executor_id}/{container_id}"


# ---------------------------------------------------------------------- tasks
def task_view(task: Task) -> dict[str, Any]:
    """A task with its history, executor and sandbox (the executor run its agent put it
    in; "" until the agent named it)."""
    return {
        "id": task.id,
        "name": task.name,
        "framework_id": task.framework_id,
        "agent_id": task.agent_id,
        "state": STATE_NAMES[task.state],
        "status_update_state": STATE_NAMES[task.status_update_state],
        "resources": task.resources.to_dict(),
        "role": task.role,
        "healthy": task.healthy,
        "executor_id": task.executor_id,
        "sandbox": sandbox_path(task.framework_id, task.executor_id, task.container_id) if task.container_id else "",
        "statuses": [status_view(data) for data in task.statuses],
    }


def task_update_view(task: Task) -> dict[str, Any]:
    """What the event stream says of an updated task: its ids, states, health, sandbox
    and history (`task_view` without what does not change)."""
    view = task_view(task)
    del view["resources"], view["name"], view["role"]
    return view


# ---------------------------------------------------------------------- agents
def _reservations(resources: Iterable[pb.Resource]) -> dict[str, dict[str, float]]:
    """Scalars reserved to each role (dynamic and static reservations alike)."""
    out: dict[str, dict[str, float]] = {}
    for r in resources:
        role = r.reservations[-1].role if r.reservations else (r.role if r.role not in ("", "*") else "")
        if role and r.type == pb.Value.SCALAR:
            scalars = out.setdefault(role, {})
            scalars[r.name] = round(scalars.get(r.name, 0.0) + r.scalar.value, 3)
    return out


def agent_view(agent: Agent) -> dict[str, Any]:
    resources = agent.info.resources
    sizes = {r.disk.persistence.id: r.scalar.value for r in resources
             if r.HasField("disk") and r.disk.HasField("persistence")}
    return {
        "id": agent.id,
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "transport": agent.transport,
        "principal": agent.principal,
        "state": agent.state.value,
        "resources": agent.total.to_dict(),
        "used_resources": agent.used.to_dict(),
        "offered_resources": agent.offered.to_dict(),
        "attributes": attributes_to_dict(agent.info.attributes),
        "reservations": _reservations(resources),
        "reserved_resources_full": _reserved_by_role(agent.total),
        "volumes": [{"role": role, "persistence_id": pid, "container_path": path, "disk": sizes.get(pid, 0.0)}
                    for role, pid, path in persistent_volumes(resources)],
        "registered_time": agent.registered_at,
        "task_count": len(agent.tasks),
    }


# ---------------------------------------------------------------------- frameworks
def framework_view(engine: MasterEngine, fw: Framework, *, tasks: bool = True) -> dict[str, Any]:
    """A framework; with `tasks`, its active and completed tasks too."""
    view = {
        "id": fw.id,
        "name": fw.info.name,
        "user": fw.info.user,
        "principal": fw.info.principal,
        "roles": fw.roles,
        "connected": fw.connected,
        "active": fw.connected,
        "checkpoint": fw.info.checkpoint,
        "failover_timeout": fw.info.failover_timeout,
        "registered_time": fw.registered_at,
        "unregistered_time": fw.removed_at,
        "offers": len(fw.offers),
        "used_resources": _sum_scalars(engine.allocator.allocated(fw.id).values()) if fw.id in engine.frameworks else {},
        "counters": {"status_updates": fw.status_updates, "acknowledgements": fw.acknowledgements},
        "reconciliation": {"calls": fw.reconcile_calls, "last": fw.last_reconcile},
        "task_count": len(fw.tasks),
    }
    if tasks:
        view["tasks"] = [task_view(t) for t in fw.tasks.values()]
        view["completed_tasks"] = [task_view(t) for t in fw.completed]
    return view


def _reserved_by_role(total: Resources) -> dict[str, list[dict[str, Any]]]:
    """Mesos' `reserved_resources_full`: role -> its reserved resources (volumes
    included) in the protobuf JSON mapping."""
    out: dict[str, list[dict[str, Any]]] = {}
    for resource in total.reserved().to_protos():
        out.setdefault(resource.role, []).append(MessageToDict(resource))
    return out


def _sum_scalars(resources: Any) -> dict[str, float]:
    """{name: total} of the scalars in several agents' resources (ranges and sets are
    per agent and do not add up across agents)."""
    totals: dict[str, float] = {}
    for r in resources:
        for name in r.names():
            value = r.scalar(name)
            if value:
                totals[name] = round(totals.get(name, 0.0) + value, 3)
    return totals


# ---------------------------------------------------------------------- the master
#: the terminal states counted in `task_counters` (Mesos' master/tasks_<state>)
COUNTED_ENDS = (pb.TASK_FINISHED, pb.TASK_FAILED, pb.TASK_KILLED, pb.TASK_ERROR, pb.TASK_LOST, pb.TASK_DROPPED,
                pb.TASK_GONE, pb.TASK_GONE_BY_OPERATOR)


def task_counters(engine: MasterEngine) -> dict[str, int]:
    """Tasks that reached each terminal state since the master started, by state name."""
    return {STATE_NAMES[s]: engine.task_ends.get(s, 0) for s in COUNTED_ENDS}


def framework_record(engine: MasterEngine, framework_id: str) -> Framework | None:
    """An active or completed framework (None: one the master does not know)."""
    fw = engine.frameworks.get(framework_id)
    if fw is None:
        fw = next((f for f in engine.completed_frameworks if f.id == framework_id), None)
    return fw


def may_view_tasks(engine: MasterEngine, user: str | None, viewer: str | None) -> bool:
    """Whether `viewer` may see the tasks of a framework of `user` (view_frameworks and
    view_tasks; what a view hides is not a denial)."""
    may_view = engine.authorizer.may_view
    return may_view(Action.VIEW_FRAMEWORKS, viewer, user) and may_view(Action.VIEW_TASKS, viewer, user)


def check_task_view(engine: MasterEngine, task: Task, viewer: str | None) -> None:
    """Denied (counted; a 403) unless `viewer` may see `task` (asked for by name)."""
    fw = framework_record(engine, task.framework_id)
    user = fw.info.user if fw is not None else None
    engine.authorizer.check(Action.VIEW_FRAMEWORKS, viewer, user)
    engine.authorizer.check(Action.VIEW_TASKS, viewer, user)


def _visible(engine: MasterEngine, frameworks: Iterable[Framework], viewer: str | None) -> list[dict[str, Any]]:
    """The views of the frameworks (and their tasks) `viewer` may see (view_frameworks,
    view_tasks; what a view hides is not a denial)."""
    may_view = engine.authorizer.may_view
    views = []
    for fw in frameworks:
        if may_view(Action.VIEW_FRAMEWORKS, viewer, fw.info.user):
            if may_view(Action.VIEW_TASKS, viewer, fw.info.user):
                views.append(framework_view(engine, fw))
            else:
                views.append({**framework_view(engine, fw, tasks=False), "tasks": [], "completed_tasks": []})
    return views


def state_view(engine: MasterEngine, viewer: str | None = None) -> dict[str, Any]:
    """A JSON-able view of the whole master (the /state endpoint and the event stream's
    SUBSCRIBED event), as `viewer` may see it."""
    return {
        "id": engine.id,
        "hostname": engine.info.hostname,
        "port": engine.info.port,
        "transport": engine.info.transport,
        "version": engine.info.version,
        "start_time": engine.info.start_time,
        "agents": [agent_view(a) for a in engine.agents.values()],
        "frameworks": _visible(engine, engine.frameworks.values(), viewer),
        "completed_frameworks": _visible(engine, engine.completed_frameworks, viewer),
        "counters": dict(engine.counters),
        "task_counters": task_counters(engine),
        # agents the registry names that are not registered: admitted but not back yet
        # since this master started (or was elected), unreachable (since), marked gone
        "recovering_agents": sorted(engine.recovering),
        "unreachable_agents": dict(sorted(engine.unreachable_since.items())),
        "gone_agents": sorted(engine.gone),
    }


def tasks_view(engine: MasterEngine, framework_id: str | None, state: str, every: bool,
               viewer: str | None = None) -> list[dict[str, Any]]:
    """The tasks of every framework (of `framework_id`'s only, when given), active ones
    only unless `every` (then completed ones and those of completed frameworks too), in
    `state` (a state's name; '': in any), that `viewer` may see."""
    frameworks = [*engine.frameworks.values(), *(engine.completed_frameworks if every else ())]
    return [task_view(task)
            for fw in frameworks
            if (not framework_id or fw.id == framework_id) and may_view_tasks(engine, fw.info.user, viewer)
            for task in (*fw.tasks.values(), *(fw.completed if every else ()))
            if not state or STATE_NAMES[task.state] == state]
