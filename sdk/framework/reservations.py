"""Building the offer operations of stateful frameworks (RESERVE, CREATE, UNRESERVE,
DESTROY) and finding reserved resources and persistent volumes in offers.

    wanted = corral.Resources.parse("cpus:0.5;mem:256;disk:512")
    ops = [reserve(wanted, "db", "db-principal"),
           create_volume(volume("db", "db-principal", 512, "node-1-data", "data"))]

Dynamic reservations here are made for one role with the framework's principal;
`reserved_to` gives the unreserved resources of a `Resources` the same reservation.
`OfferView` splits an offer into what is unreserved, what is reserved to a role, and
the persistent volumes it carries, so a scheduler can tell its own resources from
anyone's, and find the volume it created on an agent when that agent's resources come
back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from corral.protos import corral_pb2 as pb
from corral.resources import Resources

Op = pb.Offer.Operation
DYNAMIC = pb.Resource.ReservationInfo.DYNAMIC


def reserved_to(resources: Resources, role: str, principal: str = "") -> Resources:
    """`resources` (unreserved) dynamically reserved to `role` by `principal`."""
    out = []
    for r in resources.to_protos():
        info = r.reservations.add(type=DYNAMIC, role=role)
        if principal:
            info.principal = principal
        r.role = role
        out.append(r)
    return Resources.from_protos(out)


def volume(role: str, principal: str, size_mb: float, persistence_id: str, container_path: str) -> pb.Resource:
    """A persistent volume of `size_mb` on disk reserved to `role`."""
    (disk,) = reserved_to(Resources.parse(f"disk:{size_mb:g}"), role, principal).to_protos()
    disk.disk.persistence.id = persistence_id
    if principal:
        disk.disk.persistence.principal = principal
    disk.disk.volume.container_path = container_path
    disk.disk.volume.mode = pb.Volume.RW
    return disk


def reserve(resources: Resources, role: str, principal: str = "") -> pb.Offer.Operation:
    """RESERVE the unreserved `resources` for `role`."""
    return Op(type=Op.RESERVE, reserve=Op.Reserve(resources=reserved_to(resources, role, principal).to_protos()))


def unreserve(reserved: Resources) -> pb.Offer.Operation:
    """UNRESERVE resources as they were offered (reserved, without volumes)."""
    return Op(type=Op.UNRESERVE, unreserve=Op.Unreserve(resources=reserved.to_protos()))


def create_volume(*volumes: pb.Resource) -> pb.Offer.Operation:
    return Op(type=Op.CREATE, create=Op.Create(volumes=list(volumes)))


def destroy_volume(*volumes: pb.Resource) -> pb.Offer.Operation:
    return Op(type=Op.DESTROY, destroy=Op.Destroy(volumes=list(volumes)))


def without_volume(resource: pb.Resource) -> pb.Resource:
    """The reserved disk under a persistent volume (what DESTROY leaves)."""
    plain = pb.Resource()
    plain.CopyFrom(resource)
    plain.ClearField("disk")
    return plain


@dataclass(frozen=True)
class OfferView:
    """An offer's resources, split: `unreserved`, `reserved` (to `role`, volumes
    excluded) and `volumes` (persistence id -> the volume resource, for `role`)."""

    unreserved: Resources
    reserved: Resources
    volumes: dict[str, pb.Resource]

    @classmethod
    def of(cls, offer: pb.Offer | Iterable[pb.Resource], role: str) -> "OfferView":
        protos = offer.resources if isinstance(offer, pb.Offer) else offer
        unreserved, reserved, volumes = [], [], {}
        for r in protos:
            is_role = bool(r.reservations) and r.reservations[-1].role == role
            if r.HasField("disk") and r.disk.HasField("persistence"):
                if is_role:
                    volumes[r.disk.persistence.id] = r
            elif is_role:
                reserved.append(r)
            elif not r.reservations and r.role in ("", "*"):
                unreserved.append(r)
        return cls(Resources.from_protos(unreserved), Resources.from_protos(reserved), volumes)

    def releasing(self, keep_volumes: Iterable[str] = ()) -> list[pb.Offer.Operation]:
        """DESTROY every volume not in `keep_volumes`, then UNRESERVE everything reserved
        that is not under a kept volume: what gives the role's resources back."""
        keep = set(keep_volumes)
        drop = [v for pid, v in sorted(self.volumes.items()) if pid not in keep]
        ops = []
        if drop:
            ops.append(destroy_volume(*drop))
        freed = self.reserved + Resources.from_protos([without_volume(v) for v in drop])
        if freed:
            ops.append(unreserve(freed))
        return ops
