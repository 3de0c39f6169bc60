"""A JSON-able view of the whole master (the daemon's /state and related endpoints)."""
from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict

from corral.engines.master.records import Task
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.security.acls import Action


class SnapshotMixin:
    """The master engine's view of itself (a part of `MasterEngine`)."""

    def snapshot(self, viewer: str | None = None) -> dict[str, Any]:
        """A JSON-able view of the whole master (the /state endpoint), as `viewer` (the
        HTTP principal) may see it: the frameworks the ACLs' view_frameworks and the
        tasks their view_tasks let it see, by the framework's user."""

        def task_view(task: Task) -> dict[str, Any]:
            return {
                "id": task.id,
                "name": task.name,
                "framework_id": task.framework_id,
                "agent_id": task.agent_id,
                "state": pb.TaskState.Name(task.state),
                "status_update_state": pb.TaskState.Name(task.status_update_state),
                "resources": task.resources.to_dict(),
                "healthy": task.healthy,
            }

        return {
            "id": self.id,
            "hostname": self.info.hostname,
            "port": self.info.port,
            "transport": self.info.transport,
            "version": self.info.version,
            "start_time": self.info.start_time,
            "agents": [
                {
                    "id": a.id,
                    "hostname": a.info.hostname,
                    "transport": a.transport,
                    "principal": a.principal,
                    "state": a.state.value,
                    "resources": a.total.to_dict(),
                    "used_resources": a.used.to_dict(),
                    "offered_resources": a.offered.to_dict(),
                    "reserved_resources_full": _reserved_by_role(a.total),
                    "registered_time": a.registered_at,
                    "task_count": len(a.tasks),
                }
                for a in self.agents.values()
            ],
            "frameworks": [
                {
                    "id": f.id,
                    "name": f.info.name,
                    "user": f.info.user,
                    "principal": f.principal,
                    "roles": f.roles,
                    "connected": f.connected,
                    "active": f.connected,
                    "checkpoint": f.info.checkpoint,
                    "failover_timeout": f.info.failover_timeout,
                    "registered_time": f.registered_at,
                    "offers": len(f.offers),
                    "used_resources": _sum_scalars(self.allocator.allocated(f.id).values()),
                    "tasks": [task_view(t) for t in f.tasks.values()] if tasks_visible else [],
                    "completed_tasks": [task_view(t) for t in f.completed] if tasks_visible else [],
                }
                for f in self.frameworks.values()
                if self.authorizer.may_view(Action.VIEW_FRAMEWORKS, viewer, f.info.user)
                for tasks_visible in (self.authorizer.may_view(Action.VIEW_TASKS, viewer, f.info.user),)
            ],
            "counters": dict(self.counters),
        }


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
