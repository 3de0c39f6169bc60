"""Offer operations that change an agent's resources: RESERVE, UNRESERVE, CREATE and
DESTROY, each seen as a conversion of some offered resources (`consumed`) into others
(`converted`) of the same quantities:

- RESERVE: unreserved (or reserved to a parent role) -> dynamically reserved to the role;
- UNRESERVE: the reverse, popping the last dynamic reservation;
- CREATE: reserved disk -> a persistent volume on it (persistence id and container path);
- DESTROY: the reverse; the volume's data goes with it.

Validation names the bad resource; applying a conversion to what is offered fails unless
the offers hold everything `consumed` names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from corral.engines.authorization import Authorizer
from corral.protos import corral_pb2 as pb
from corral.resources import ResourceError, Resources
from corral.security.acls import Action

Op = pb.Offer.Operation
DYNAMIC = pb.Resource.ReservationInfo.DYNAMIC


class OperationError(ValueError):
    """An operation that cannot be applied; the message says which resource and why."""


@dataclass(frozen=True)
class Conversion:
    consumed: Resources
    converted: Resources


def _copy(resource: pb.Resource) -> pb.Resource:
    out = pb.Resource()
    out.CopyFrom(resource)
    return out


def _describe(resource: pb.Resource) -> str:
    return str(Resources.from_protos([resource])) if resource.IsInitialized() else resource.name


def _pop_reservation(resource: pb.Resource, role: str) -> pb.Resource:
    if not resource.reservations:
        raise OperationError(f"{_describe(resource)}: no reservation to remove")
    last = resource.reservations[-1]
    if last.type != DYNAMIC:
        raise OperationError(f"{_describe(resource)}: only dynamic reservations can be undone")
    if last.role != role:
        raise OperationError(f"{_describe(resource)}: reserved to {last.role!r}, not to the offer's role {role!r}")
    if resource.HasField("disk") and resource.disk.HasField("persistence"):
        raise OperationError(f"{_describe(resource)}: destroy the persistent volume before unreserving its disk")
    popped = _copy(resource)
    del popped.reservations[-1]
    popped.ClearField("role")
    if popped.reservations:
        popped.role = popped.reservations[-1].role
    return popped


def _without_volume(resource: pb.Resource) -> pb.Resource:
    plain = _copy(resource)
    plain.ClearField("disk")
    return plain


def authorize(op: pb.Offer.Operation, principal: str | None, authorizer: Authorizer) -> None:
    """Check `op` against the ACLs for `principal` (the framework's); Denied names what
    is refused. RESERVE and CREATE record the principal as the reservation's or the
    volume's (OperationError when they name another); UNRESERVE and DESTROY are
    authorised against the principal that made the reservation or the volume."""
    if op.type == Op.RESERVE:
        for r in op.reserve.resources:
            if r.reservations:
                _own(r.reservations[-1], principal, "reservation")
                authorizer.check(Action.RESERVE_RESOURCES, principal, r.reservations[-1].role)
    elif op.type == Op.UNRESERVE:
        for r in op.unreserve.resources:
            reserver = r.reservations[-1].principal if r.reservations else ""
            authorizer.check(Action.UNRESERVE_RESOURCES, principal, reserver or None)
    elif op.type == Op.CREATE:
        for v in op.create.volumes:
            if v.HasField("disk") and v.disk.HasField("persistence"):
                _own(v.disk.persistence, principal, "persistent volume")
            role = v.reservations[-1].role if v.reservations else v.role
            authorizer.check(Action.CREATE_VOLUMES, principal, role or "*")
    elif op.type == Op.DESTROY:
        for v in op.destroy.volumes:
            creator = v.disk.persistence.principal if v.HasField("disk") and v.disk.HasField("persistence") else ""
            authorizer.check(Action.DESTROY_VOLUMES, principal, creator or None)


def _own(info: pb.Resource.ReservationInfo | pb.Resource.DiskInfo.Persistence, principal: str | None,
         what: str) -> None:
    """A reservation or volume made by `principal`: it carries that principal."""
    if principal is None:
        return
    if info.principal and info.principal != principal:
        raise OperationError(f"the {what} names principal {info.principal!r}, not the framework's {principal!r}")
    info.principal = principal


def conversion(op: pb.Offer.Operation, role: str, agent_total: Resources) -> Conversion:
    """What `op` consumes and produces, for a framework in `role` on an agent whose
    resources are `agent_total`."""
    try:
        if op.type == Op.RESERVE:
            targets = list(op.reserve.resources)
            for r in targets:
                if not r.reservations or r.reservations[-1].type != DYNAMIC or r.reservations[-1].role != role:
                    raise OperationError(f"{_describe(r)}: RESERVE needs a dynamic reservation to the offer's "
                                         f"role {role!r} as its last reservation")
            sources = [_pop_reservation(r, role) for r in targets]
            return _checked(sources, targets)
        if op.type == Op.UNRESERVE:
            sources = list(op.unreserve.resources)
            return _checked(sources, [_pop_reservation(r, role) for r in sources])
        if op.type == Op.CREATE:
            volumes = list(op.create.volumes)
            existing = _persistence_ids(agent_total)
            for v in volumes:
                if not (v.HasField("disk") and v.disk.HasField("persistence") and v.disk.HasField("volume")):
                    raise OperationError(f"{_describe(v)}: CREATE needs disk info with a persistence id and a volume")
                if v.disk.persistence.id in existing:
                    raise OperationError(f"persistent volume {v.disk.persistence.id!r} already exists on this agent")
                if not v.reservations and (not v.HasField("role") or v.role in ("", "*")):
                    raise OperationError(f"{_describe(v)}: a persistent volume needs reserved disk")
            return _checked([_without_volume(v) for v in volumes], volumes)
        if op.type == Op.DESTROY:
            volumes = list(op.destroy.volumes)
            for v in volumes:
                if not (v.HasField("disk") and v.disk.HasField("persistence")):
                    raise OperationError(f"{_describe(v)}: DESTROY names a resource that is not a persistent volume")
            return _checked(volumes, [_without_volume(v) for v in volumes])
    except ResourceError as exc:
        raise OperationError(str(exc)) from None
    raise OperationError(f"operation {Op.Type.Name(op.type)} does not convert resources")


def _checked(consumed: Iterable[pb.Resource], converted: Iterable[pb.Resource]) -> Conversion:
    before, after = Resources.from_protos(consumed), Resources.from_protos(converted)
    if not before:
        raise OperationError("the operation names no resources")
    return Conversion(before, after)


def _persistence_ids(total: Resources) -> set[str]:
    return {r.disk.persistence.id for r in total.to_protos() if r.HasField("disk") and r.disk.HasField("persistence")}


def apply(offered: Resources, change: Conversion, in_use: Resources) -> Resources:
    """`offered` after the conversion; OperationError when the offers lack part of what it
    consumes (naming it, and saying when a task is using it)."""
    if not offered.contains(change.consumed):
        if in_use.contains(change.consumed):
            raise OperationError(f"{change.consumed} is in use by a task")
        raise OperationError(f"{change.consumed} is not in the offers (they have {offered})")
    return offered - change.consumed + change.converted
