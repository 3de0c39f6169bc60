"""Plans, phases and steps (the dcos-commons model): how a framework shows and paces the
work of deploying, updating and recovering a service.

A `Plan` is a list of `Phase`s, a phase a list of `Step`s; plans and phases each have a
`Strategy`: SERIAL (one child at a time, in order) or PARALLEL (all at once). A step's
status comes from the framework (a step is usually a view over one task's state);
phases and plans sum their children up. `Plan.candidates()` names the steps that may
be worked on now: none while the plan is interrupted, else those the strategies allow.
An interrupted plan is WAITING: the step in progress finishes, no new one starts,
until the operator continues it.

`Plan.to_dict()` is the JSON `GET /v1/plans/NAME` answers with.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Sequence


class Status(enum.Enum):
    PENDING = "PENDING"        # not started
    PREPARED = "PREPARED"      # resources chosen, the launch is on its way
    STARTING = "STARTING"      # launched, not yet running
    STARTED = "STARTED"        # running, not yet ready
    COMPLETE = "COMPLETE"      # ready
    WAITING = "WAITING"        # interrupted by the operator
    IN_PROGRESS = "IN_PROGRESS"  # (phases and plans) some children done or under way
    ERROR = "ERROR"            # cannot go on; the message says why

    @property
    def working(self) -> bool:
        return self in (Status.PREPARED, Status.STARTING, Status.STARTED)


class Strategy(enum.Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"


@dataclass
class Step:
    name: str
    status: Status = Status.PENDING
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "message": self.message}


def summarize(statuses: Sequence[Status]) -> Status:
    """The status of a phase or plan from its children's."""
    if not statuses or all(s is Status.COMPLETE for s in statuses):
        return Status.COMPLETE
    if any(s is Status.ERROR for s in statuses):
        return Status.ERROR
    if all(s is Status.PENDING for s in statuses):
        return Status.PENDING
    if all(s in (Status.PENDING, Status.WAITING) for s in statuses) and Status.WAITING in statuses:
        return Status.WAITING
    return Status.IN_PROGRESS


def _eligible(children: Sequence[Any], strategy: Strategy, status_of: Any) -> list[Any]:
    open_children = [c for c in children if status_of(c) is not Status.COMPLETE]
    if strategy is Strategy.PARALLEL:
        return open_children
    return open_children[:1]


@dataclass
class Phase:
    name: str
    steps: list[Step]
    strategy: Strategy = Strategy.SERIAL

    @property
    def status(self) -> Status:
        return summarize([s.status for s in self.steps])

    def candidates(self) -> list[Step]:
        return [s for s in _eligible(self.steps, self.strategy, lambda s: s.status) if s.status is not Status.ERROR]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "strategy": self.strategy.value,
                "steps": [s.to_dict() for s in self.steps]}


@dataclass
class Plan:
    name: str
    phases: list[Phase]
    strategy: Strategy = Strategy.SERIAL
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        status = summarize([p.status for p in self.phases])
        if self.interrupted and status is not Status.COMPLETE:
            return Status.WAITING
        if self.errors and status is not Status.COMPLETE:
            return Status.ERROR
        return status

    def candidates(self) -> list[Step]:
        """The steps that may be worked on now (see the module docstring)."""
        if self.interrupted:
            return [s for p in self.phases for s in p.steps if s.status.working]
        out: list[Step] = []
        for phase in _eligible(self.phases, self.strategy, lambda p: p.status):
            out.extend(phase.candidates())
        return out

    def step(self, name: str) -> Step | None:
        for phase in self.phases:
            for step in phase.steps:
                if step.name == name:
                    return step
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "strategy": self.strategy.value,
                "phases": [p.to_dict() for p in self.phases], "errors": list(self.errors)}
