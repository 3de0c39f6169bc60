"""`Scheduler`, the base class a framework subclasses, and `SchedulerDriver`, which
connects it to the leading master (the Mesos driver API, in Python naming)."""
from __future__ import annotations

import logging
import os
import pwd
import random
from typing import Any, Callable, Iterable, Sequence

from corral.runtime.detector import master_detector
from corral.runtime.driver import DriverBase, DriverStatus
from corral.engines.base import Callback
from corral.engines.base import MasterLost
from corral.engines.scheduler import Abort, SchedulerConfig, SchedulerEngine, SchedulerEvent
from corral.engines.scheduler.reconcile import Progress
from corral.protos import corral_pb2 as pb
from corral.runtime import Runtime
from corral.runtime.actions import Performer
from corral.security.links import Credential, CurveLinks

log = logging.getLogger(__name__)

#: implicit acknowledgements held by the callback thread before they go to the I/O thread
#: even while callbacks keep coming (they go at once whenever it has caught up)
IMPLICIT_ACKS_MAX = 256
# (an Enum member read from its class costs a Python call: read once here)
_REGISTERED, _STATUS_UPDATE = SchedulerEvent.REGISTERED, SchedulerEvent.STATUS_UPDATE


class Scheduler:
    """Subclass and override what you need; every callback gets the driver first."""

    def registered(self, driver: "SchedulerDriver", framework_id: pb.FrameworkID, master_info: pb.MasterInfo) -> None:
        """The master accepted the framework and gave it `framework_id`."""

    def reregistered(self, driver: "SchedulerDriver", master_info: pb.MasterInfo) -> None:
        """The framework is subscribed again (after a failover or lost connection)."""

    def disconnected(self, driver: "SchedulerDriver") -> None:
        """The master is unreachable; the driver is looking for it."""

    def resource_offers(self, driver: "SchedulerDriver", offers: list[pb.Offer]) -> None:
        """New offers: launch tasks on them, or decline them."""

    def offer_rescinded(self, driver: "SchedulerDriver", offer_id: pb.OfferID) -> None:
        """An offer is no longer valid."""

    def status_update(self, driver: "SchedulerDriver", status: pb.TaskStatus) -> None:
        """A task changed state. Called once per update (duplicates are filtered)."""

    def framework_message(self, driver: "SchedulerDriver", executor_id: pb.ExecutorID, agent_id: pb.AgentID,
                          data: bytes) -> None:
        """An executor sent a message (best effort)."""

    def agent_lost(self, driver: "SchedulerDriver", agent_id: pb.AgentID) -> None:
        """An agent was removed."""

    def executor_lost(self, driver: "SchedulerDriver", executor_id: pb.ExecutorID, agent_id: pb.AgentID,
                      status: int) -> None:
        """An executor exited with `status`."""

    def error(self, driver: "SchedulerDriver", message: str) -> None:
        """Something went wrong; `message` says what. Logged by default."""
        log.error("scheduler error: %s", message)

    def reconciliation_stalled(self, driver: "SchedulerDriver", progress: Progress, task_ids: list[str]) -> None:
        """A reconciliation round has not converged after its configured attempts; the
        driver keeps asking (at the longest backoff). `error` has been called too."""


class FrameworkIdStore:
    """The framework id in a file, written atomically (temporary file, fsync, rename)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def load(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                value = f.read().strip()
        except FileNotFoundError:
            return None
        return value or None

    def save(self, framework_id: str) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(framework_id + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """Forget the id (after the framework was torn down for good)."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def _default_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "root"


class SchedulerCalls:
    """The calls a framework makes on its driver, mapped onto the scheduler engine, and
    what the driver does once a status update's callback has run. Shared by
    `SchedulerDriver` and the simulator's driver, which provide `engine`, `_config` (its
    engine's), `_call(fn, *args)` (run on the engine's thread), `_now()` and
    `_implicit_acks` (a list)."""

    engine: SchedulerEngine
    _config: SchedulerConfig
    #: the ack rows of updates whose callback returned, not sent yet (`_send_implicit_acks`)
    _implicit_acks: list[tuple[str, str, bytes]]

    def _call(self, fn: Callable[..., Any], *args: Any) -> DriverStatus:
        raise NotImplementedError

    def _now(self) -> float:
        raise NotImplementedError

    def _status_update_done(self, callback: Callback, failed: bool) -> None:
        """After the user's callback for `callback`: a status update whose callback
        raised is delivered again when its agent retries it (it was not acknowledged);
        one whose callback returned is acknowledged, with implicit acknowledgements,
        together with those before it (`_send_implicit_acks`)."""
        if callback.event is not _STATUS_UPDATE:
            return
        status = callback.args[0]
        if failed:
            self._call(self.engine.redeliver, status)
        elif self._config.implicit_acknowledgements and callback.ack is not None:
            self._implicit_acks.append(callback.ack)
            if len(self._implicit_acks) >= IMPLICIT_ACKS_MAX:
                self._send_implicit_acks()

    def _send_implicit_acks(self) -> None:
        """The implicit acks of the callbacks run so far go to the I/O thread together:
        one call, not one per update. (A slow callback holds the acks of the ones run
        just before it for as long as it runs; an agent resends an update only after
        10 s without its ack, and the resend is dropped here as a duplicate.)"""
        if self._implicit_acks:
            acks, self._implicit_acks = self._implicit_acks, []
            self._call(self.engine.acknowledge_delivered, acks)

    def launch_tasks(self, offer_ids: pb.OfferID | Sequence[pb.OfferID], tasks: Iterable[pb.TaskInfo],
                     filters: pb.Filters | None = None) -> DriverStatus:
        ids = [offer_ids] if isinstance(offer_ids, pb.OfferID) else list(offer_ids)
        op = pb.Offer.Operation(type=pb.Offer.Operation.LAUNCH)
        op.launch.task_infos.extend(tasks)
        return self.accept_offers(ids, [op], filters)

    def accept_offers(self, offer_ids: Sequence[pb.OfferID], operations: Iterable[pb.Offer.Operation],
                      filters: pb.Filters | None = None) -> DriverStatus:
        ids, ops = list(offer_ids), list(operations)
        return self._call(lambda: self.engine.accept(ids, ops, filters, self._now()))

    def decline_offer(self, offer_id: pb.OfferID, filters: pb.Filters | None = None) -> DriverStatus:
        return self._call(self.engine.decline, [offer_id], filters)

    def revive_offers(self, roles: Iterable[str] = ()) -> DriverStatus:
        return self._call(self.engine.revive, list(roles))

    def suppress_offers(self, roles: Iterable[str] = ()) -> DriverStatus:
        return self._call(self.engine.suppress, list(roles))

    def kill_task(self, task_id: pb.TaskID) -> DriverStatus:
        """Kill a task; the driver retries until the task reports a terminal state."""
        return self._call(lambda: self.engine.kill(task_id, self._now()))

    def acknowledge_status_update(self, status: pb.TaskStatus) -> DriverStatus:
        return self._call(self.engine.acknowledge, status)

    def reconcile_tasks(self, statuses: Iterable[pb.TaskStatus]) -> DriverStatus:
        return self._call(self.engine.reconcile, list(statuses))

    def send_framework_message(self, executor_id: pb.ExecutorID, agent_id: pb.AgentID, data: bytes) -> DriverStatus:
        return self._call(self.engine.send_framework_message, executor_id, agent_id, data)

    def track_tasks(self, statuses: Iterable[pb.TaskStatus]) -> DriverStatus:
        """Hand over the tasks a restarted framework knows from its own store: they are
        reconciled in the next round like the ones the driver launched itself."""
        listed = list(statuses)
        return self._call(lambda: self.engine.track_tasks(listed, self._now()))


class SchedulerDriver(DriverBase, SchedulerCalls):
    """Connects a `Scheduler` to the master at `master` ("HOST:PORT")."""

    engine: SchedulerEngine

    def __init__(self, scheduler: Scheduler, framework_info: pb.FrameworkInfo, master: str,
                 implicit_acknowledgements: bool = True, host: str = "127.0.0.1",
                 framework_id_file: str | os.PathLike[str] | None = None,
                 config: SchedulerConfig | None = None, credential: Credential | None = None) -> None:
        """`framework_id_file`: where the framework id is kept across restarts. When the
        file exists, the driver subscribes with that id (failing over the previous
        scheduler of the framework); once registered it writes the id there.

        `credential`: the framework's key pair and the master's public key, for a master
        whose links are secured (`corral.security.links.Credential`); by default read
        from CORRAL_KEY and CORRAL_MASTER_KEY when they are set (plaintext otherwise)."""
        super().__init__(scheduler, host)
        self._credential = credential if credential is not None else Credential.from_environment()
        info = pb.FrameworkInfo()
        info.CopyFrom(framework_info)
        if not info.user:
            info.user = _default_user()
        self._id_store = FrameworkIdStore(framework_id_file) if framework_id_file is not None else None
        if self._id_store is not None and not info.HasField("id"):
            saved = self._id_store.load()
            if saved:
                info.id.value = saved
        self._framework_info = info
        self._config = config or SchedulerConfig()
        self._config.implicit_acknowledgements = implicit_acknowledgements
        self._detector = master_detector(master, self._master_found, on_unreachable=self._master_unreachable)
        self._implicit_acks = []

    def _make_engine(self, address: str) -> SchedulerEngine:
        return SchedulerEngine(self._framework_info, address, self._config, random.Random())

    def _links(self) -> CurveLinks | None:
        return self._credential.links() if self._credential is not None else None

    def _performers(self) -> dict[type, Performer]:
        return {**super()._performers(), Abort: lambda _action: self.abort(),
                MasterLost: lambda _action: self._detector.detect()}

    def _on_started(self, runtime: Runtime) -> None:
        self._detector.detect()

    def _master_found(self, transport: str) -> None:
        self._call(lambda: self.engine.connect(transport, self._now()))

    def _master_unreachable(self, message: str) -> None:
        """The detector cannot reach the master (once per outage): the user's `error`."""
        self._callbacks.put(Callback(SchedulerEvent.ERROR, message))

    def _before_callback(self, callback: Callback) -> None:
        if callback.event is _REGISTERED and self._id_store is not None:
            self._id_store.save(callback.args[0].value)

    # the callback thread's hooks (DriverBase), without a call in between
    _after_callback = SchedulerCalls._status_update_done
    _caught_up = SchedulerCalls._send_implicit_acks

    @property
    def framework_id(self) -> str | None:
        return self.engine.framework_id if self._runtime else None

    def reconciliation_progress(self) -> Progress:
        """The current round: number, kind, attempts, tasks remaining, oldest pending."""
        assert self._runtime is not None, "driver not started"
        with self._runtime.lock:
            return self.engine.progress(self._now())

    def task_states(self) -> dict[str, tuple[str, int]]:
        """The framework's non-terminal tasks as the driver knows them:
        task id -> (agent id, latest state)."""
        assert self._runtime is not None, "driver not started"
        with self._runtime.lock:
            return dict(self.engine.task_states())

    # -- lifecycle --------------------------------------------------------------------
    def stop(self, failover: bool = False) -> DriverStatus:
        """Stop the driver; without failover the framework is torn down (its tasks
        killed), with failover its tasks keep running for failover_timeout."""
        if self.status is DriverStatus.RUNNING and self._runtime is not None:
            self._runtime.call_soon(self.engine.stop, failover)
            self._runtime.call_soon(self._runtime.stop)
            self._runtime.join(5.0)
        self._detector.stop()
        if not failover and self._id_store is not None:
            self._id_store.clear()  # torn down: a new run is a new framework
        return self._finish(DriverStatus.STOPPED)

    def abort(self) -> DriverStatus:
        self._detector.stop()
        return super().abort()
