"""corral's resource model: what agents offer, frameworks are allocated and tasks consume.

Owns
- `Resources`: an immutable multiset of resources, keyed by (name, value kind, role,
  reservations, disk info), with the arithmetic the allocator and the engines need
  (`+`, `-`, `contains`, role filters, flattening).
- Parsing: the Mesos text syntax (`cpus(role):4;mem:1024;ports:[31000-32000];gpus:{a,b}`)
  and the protobuf JSON mapping of a list of `corral.Resource` (text starting with `[`);
  conversion to and from `corral_pb2.Resource`; builders for single protos.
- Agent attributes (`rack:r1;level:3.5`): parsing into `corral_pb2.Attribute` and a JSON view.
- `detect_resources`: what this machine offers by default (the Mesos rule).

Invariants of a `Resources` value
- One entry per key. Scalars are integer milli-units (Mesos rounds scalars to 0.001), so
  arithmetic is exact: `0.1 + 0.2 == 0.3`. Ranges are sorted, disjoint and coalesced
  (`[1-3,4-6]` is stored as `[1-6]`). Sets are frozensets.
- Zero scalars and empty ranges or sets are never stored: they vanish.
- Every entry was validated on the way in (`parse`, `from_protos`); arithmetic keeps the
  invariants, so no operation re-normalises what it did not touch.
- A value is never mutated after construction.

Semantics follow Mesos: adding ranges or sets is a union (adding ports a value already holds
does not hold them twice), subtraction requires containment (corral raises `ResourceError`
where Mesos would silently clamp), and resources with different keys never mix: `cpus(r):1`
does not contain `cpus:1`. A persistent volume is indivisible: it is added or subtracted
whole. Anything malformed raises `ResourceError` naming the bad part.

Where each part lives: `model` (the `Resources` value), `values` (keys, values and their
arithmetic), `syntax` (the text syntax), `protos` (protobufs, builders), `attributes`
(agent attributes), `machine` (`detect_resources`).
"""

from corral.resources.attributes import attributes_to_dict, parse_attributes
from corral.resources.machine import DEFAULT_PORTS, DISK_KEEP_MB, MEM_KEEP_MB, detect_resources, leave_for_system
from corral.resources.model import Resources
from corral.resources.protos import ranges, scalar, set_items
from corral.resources.values import (
    UNRESERVED,
    Disk,
    Persistence,
    Reservation,
    ReservationType,
    ResourceError,
    ResourceKey,
    ValueKind,
    Volume,
    VolumeMode,
)

__all__ = [
    "DEFAULT_PORTS",
    "DISK_KEEP_MB",
    "MEM_KEEP_MB",
    "UNRESERVED",
    "Disk",
    "Persistence",
    "Reservation",
    "ReservationType",
    "ResourceError",
    "ResourceKey",
    "Resources",
    "ValueKind",
    "Volume",
    "VolumeMode",
    "attributes_to_dict",
    "detect_resources",
    "leave_for_system",
    "parse_attributes",
    "ranges",
    "scalar",
    "set_items",
]
