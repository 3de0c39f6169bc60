"""corral's hot path: envelope codec and dispatch table, ack tracker and the memory of
recent uuids, timers (on one deadline heap), the status path's protobuf codec (rows
in, wire bytes out) and its six message classes, and the status path's per-row loops.

Selects the implementation at import. The compiled modules (`corral._core.envelope`,
`.heap`, `.acks`, `.timers`, `.columns`, `.messages`, `.relay`, built by Cython from the `.py` + `.pxd` pairs in this package) are
used unless ``CORRAL_NO_EXTENSIONS=1`` or any of them is not compiled; otherwise the same
`.py` sources are loaded as plain Python under `corral._core._py.*` (see ``load_pure``).
``CORE`` says which one is in use: ``"cython"`` or ``"python"``. Callers import the
public names from `corral._core`, never from the submodules.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

MODULES = ("columns", "messages", "envelope", "heap", "acks", "timers", "relay")  # each before its users (load_pure)
_PURE_PACKAGE = __name__ + "._py"


def load_pure() -> types.SimpleNamespace:
    """The pure-Python twin: this package's `.py` sources run as plain Python, each loaded
    once as `corral._core._py.NAME`. Returns a namespace with one attribute per module."""
    package = sys.modules.get(_PURE_PACKAGE)
    if package is None:
        package = types.ModuleType(_PURE_PACKAGE, "pure-Python twin of corral._core")
        package.__path__ = []  # a namespace for the twins; nothing is found through it
        sys.modules[_PURE_PACKAGE] = package
    here = os.path.dirname(os.path.abspath(__file__))
    modules = {}
    for name in MODULES:
        qualified = f"{_PURE_PACKAGE}.{name}"
        module = sys.modules.get(qualified)
        if module is None:
            spec = importlib.util.spec_from_file_location(
                qualified, os.path.join(here, name + ".py")
            )
            module = importlib.util.module_from_spec(spec)
            sys.modules[qualified] = module
            spec.loader.exec_module(module)
            setattr(package, name, module)
        modules[name] = module
    return types.SimpleNamespace(**modules)


def _load_compiled() -> types.SimpleNamespace | None:
    """The compiled modules, or None when any of them is missing or not compiled."""
    modules = {}
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ImportError:
            return None
        if not module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return None  # the import found the .py: this module was not compiled
        modules[name] = module
    return types.SimpleNamespace(**modules)


_impl = None if os.environ.get("CORRAL_NO_EXTENSIONS") == "1" else _load_compiled()
CORE = "python" if _impl is None else "cython"
if _impl is None:
    _impl = load_pure()
    for _name in MODULES:  # so `corral._core.NAME` is the twin too, never a second copy
        sys.modules[f"{__name__}.{_name}"] = getattr(_impl, _name)
    del _name

BATCH_TYPE = _impl.envelope.BATCH_TYPE
HEADER_SIZE = _impl.envelope.HEADER_SIZE
DEFAULT_MAX_FRAME_SIZE = _impl.envelope.DEFAULT_MAX_FRAME_SIZE
EnvelopeError = _impl.envelope.EnvelopeError
Envelope = _impl.envelope.Envelope
DispatchError = _impl.envelope.DispatchError
DrainPath = _impl.envelope.DrainPath
Dispatcher = _impl.envelope.Dispatcher
Route = _impl.envelope.Route
encode = _impl.envelope.encode
encode_batch = _impl.envelope.encode_batch
decode = _impl.envelope.decode
select_drain_path = _impl.envelope.select_drain_path
SendPath = _impl.envelope.SendPath
send_frame = _impl.envelope.send_frame
encode_and_send = _impl.envelope.encode_and_send
select_send_path = _impl.envelope.select_send_path
AckTracker = _impl.acks.AckTracker
RecentUuids = _impl.acks.RecentUuids
RECENT_MAX = _impl.acks.RECENT_MAX
AddResult = _impl.acks.AddResult
AckResult = _impl.acks.AckResult
TimerQueue = _impl.timers.TimerQueue
ColumnsError = _impl.columns.ColumnsError
decode_updates = _impl.columns.decode_updates
encode_updates = _impl.columns.encode_updates
decode_acks = _impl.columns.decode_acks
encode_acks = _impl.columns.encode_acks
status_fields = _impl.columns.status_fields
status_state = _impl.columns.status_state
agent_id_of = _impl.columns.agent_id_of
canonical_task_id = _impl.columns.canonical_task_id
encode_reconcile = _impl.columns.encode_reconcile
UpdateMessage = _impl.messages.UpdateMessage
ExecutorStatusUpdate = _impl.messages.ExecutorStatusUpdate
StatusUpdateMessage = _impl.messages.StatusUpdateMessage
Updates = _impl.messages.Updates
AckMessage = _impl.messages.AckMessage
Acknowledge = _impl.messages.Acknowledge
StatusUpdateAck = _impl.messages.StatusUpdateAck
ExecutorStatusUpdateAck = _impl.messages.ExecutorStatusUpdateAck
answer_status = _impl.columns.answer_status
agent_intake = _impl.relay.agent_intake
agent_acks = _impl.relay.agent_acks
executor_acks = _impl.relay.executor_acks
master_updates = _impl.relay.master_updates
master_acks = _impl.relay.master_acks
scheduler_updates = _impl.relay.scheduler_updates
mark_acknowledged = _impl.relay.mark_acknowledged
track_updates = _impl.relay.track_updates
Callback = _impl.relay.Callback
MasterTask = _impl.relay.MasterTask
MAX_TASK_STATUSES = _impl.relay.MAX_TASK_STATUSES
AgentTask = _impl.relay.AgentTask
TrackedTask = _impl.relay.TrackedTask
UpdateSource = _impl.relay.UpdateSource

#: The implementation modules in use (`envelope.DRAIN_PATH` tells how drain receives,
#: `envelope.SEND_PATH` how send_frame / encode_and_send send).
envelope = _impl.envelope
heap = _impl.heap
acks = _impl.acks
timers = _impl.timers
columns = _impl.columns
messages = _impl.messages
relay = _impl.relay
del _impl

__all__ = [
    "CORE",
    "MODULES",
    "BATCH_TYPE",
    "HEADER_SIZE",
    "DEFAULT_MAX_FRAME_SIZE",
    "EnvelopeError",
    "Envelope",
    "DispatchError",
    "DrainPath",
    "Dispatcher",
    "Route",
    "encode",
    "encode_batch",
    "decode",
    "select_drain_path",
    "SendPath",
    "send_frame",
    "encode_and_send",
    "select_send_path",
    "AckTracker",
    "RecentUuids",
    "RECENT_MAX",
    "AddResult",
    "AckResult",
    "TimerQueue",
    "ColumnsError",
    "decode_updates",
    "encode_updates",
    "decode_acks",
    "encode_acks",
    "status_fields",
    "status_state",
    "agent_id_of",
    "canonical_task_id",
    "encode_reconcile",
    "UpdateMessage",
    "ExecutorStatusUpdate",
    "StatusUpdateMessage",
    "Updates",
    "AckMessage",
    "Acknowledge",
    "StatusUpdateAck",
    "ExecutorStatusUpdateAck",
    "answer_status",
    "agent_intake",
    "agent_acks",
    "executor_acks",
    "master_updates",
    "master_acks",
    "scheduler_updates",
    "mark_acknowledged",
    "track_updates",
    "Callback",
    "MasterTask",
    "MAX_TASK_STATUSES",
    "AgentTask",
    "TrackedTask",
    "UpdateSource",
    "load_pure",
    "envelope",
    "heap",
    "acks",
    "timers",
    "columns",
    "messages",
    "relay",
]
