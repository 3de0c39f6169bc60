"""The framework: a corral `Scheduler` that deploys the store's nodes on reserved
resources and persistent volumes, one node per agent, and operates and heals them.

Each node (`node-0`, `node-1`, ...) has a `NodeRecord`, kept in the `StateStore` and
written before anything is done on its behalf: its agent, port and volume, its current
task, the config it runs. Offers are matched to records, dcos-commons style, by making
what an agent has match what the node needs: an offer from a node's agent that lacks
its reservation gets RESERVE, one without its volume CREATE, and a node without a live
task a LAUNCH, in one accept. A node is placed on an agent that holds no other node
and meets the config's placement constraints (`corral.constraints`). Reserved resources
and volumes of the service's role that belong to no node (a replaced node's, a
decommissioned node's) are given back with DESTROY and UNRESERVE when their agent
offers them.

Plans (`corral.framework.plans`) pace the work:
- `deploy` (serial): a step per node; complete when the node runs the target config and
  every node's view of the ring shows it UN. Seeds (node-0, node-1) come first. A config
  update makes the steps of nodes on the old config pending again: they are restarted
  one at a time, each only while every other node is UN. When the update gives the
  nodes more of a resource, the node's agent reserves the extra while the node still
  runs, and the node is restarted only once that is done (an agent that lacks it leaves
  the node running and the step waiting, saying what lacks); what a node no longer
  needs is unreserved as it is relaunched on its volume.
- `recovery` (parallel): a step per deployed node that is not up: relaunched in place
  (same agent, reservation and volume) when its task died, replaced (a new agent, a new
  volume, the node started with `--replace` and streaming its data from the replicas)
  when its agent stays lost past the permanent-failure timeout, or when the operator
  asks.
- `decommission` (serial): a step per node scaled away: decommission (it streams its
  data away), kill, release its resources.
- `uninstall`: kill every node, release every reservation and volume, then remove the
  framework.

The scheduler's thread model: driver callbacks, the HTTP API's threads and a poller
thread (which reads the ring from the nodes and re-evaluates the plans) all take one
lock around the service's state.
"""
from __future__ import annotations

import enum
import json
import logging
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import corral
from corral.constraints import Placement, allows, offer_attributes
from corral.framework import plans
from corral.framework.plans import Plan, Phase, Status, Step, Strategy
from corral.framework.reservations import OfferView, create_volume, reserve, reserved_to, unreserve, volume
from corral.resources import Resources
from corral.framework.statestore import StateStore

from corral.examples.cassandra.client import Client, StoreError
from corral.examples.cassandra.config import ConfigError, ServiceConfig

log = logging.getLogger(__name__)

Op = corral.Offer.Operation
DATA_PATH = "data"
KILL_GRACE = 10.0  # seconds: a node drains its requests before it exits
_ALIVE = {corral.TASK_STAGING, corral.TASK_STARTING, corral.TASK_RUNNING, corral.TASK_KILLING}
_ANSWERED = "answered"


class Goal(enum.Enum):
    RUNNING = "RUNNING"
    DECOMMISSIONED = "DECOMMISSIONED"   # scaled away: decommission, kill, release


class Leaving(enum.Enum):
    """A scaled-away node's way out."""

    REQUESTED = "REQUESTED"   # the node was asked to decommission
    KILLING = "KILLING"       # it left the ring; its task is being killed
    RELEASING = "RELEASING"   # its reservation and volume are being given back


@dataclass
class NodeRecord:
    name: str
    index: int
    goal: str = Goal.RUNNING.value
    agent_id: str | None = None
    hostname: str | None = None
    port: int | None = None
    volume_id: str | None = None
    task_id: str | None = None
    task_state: str | None = None
    config_id: str | None = None
    #: the address of the dead node this one takes the place of, until it has joined
    replace_address: str | None = None
    #: when its agent became unreachable (the permanent-failure clock)
    lost_since: float | None = None
    #: its agent is gone for good (an operator said so): replace at once
    agent_gone: bool = False
    #: the node was seen UN at least once (so a later failure is a recovery)
    joined: bool = False
    #: the operator asked for a restart (kill, then relaunch in place)
    restarting: bool = False
    leaving: str | None = None
    replacements: int = 0
    message: str = ""
    #: the node process's pid, as its executor reported it
    pid: int | None = None
    #: when its current task was reported running (a poll of the ring must be newer)
    running_since: float | None = None
    #: the node's identity in the ring and its tokens, as the ring reports them
    host_id: str | None = None
    tokens: list[int] | None = None
    #: its agent's attributes (and hostname) when it was placed, for placement constraints
    attributes: dict[str, str] | None = None
    #: the scalars reserved for the node on its agent beside its port and volume
    #: (e.g. "cpus:0.5;mem:256"), as the scheduler last reserved them
    reserved: str | None = None

    @property
    def address(self) -> str | None:
        return f"{self.hostname}:{self.port}" if self.hostname and self.port else None

    @property
    def task_alive(self) -> bool:
        return self.task_id is not None and self.task_state is not None and \
            corral.TaskState.Value(self.task_state) in _ALIVE

    @property
    def launching(self) -> bool:
        """A launch was sent and no status has come back yet."""
        return self.task_id is not None and self.task_state is None


class CassandraService(corral.Scheduler):
    """See the module docstring."""

    def __init__(self, store: StateStore, config: ServiceConfig, *, poll_interval: float = 0.5,
                 python: str = sys.executable, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.poll_interval = poll_interval
        self.python = python
        self.lock = threading.RLock()
        saved = store.get("config")
        if saved is None:
            self.config = config.validate()
            store.put("config", self.config.to_dict())
        else:
            self.config = ServiceConfig.from_dict(saved)
        self.records: dict[str, NodeRecord] = {
            value["name"]: NodeRecord(**value) for value in store.items("node/").values()}
        if not self.records:
            with store.transaction():
                for i in range(self.config.nodes):
                    self._save(NodeRecord(f"node-{i}", i))
        self.interrupted: dict[str, bool] = store.get("interrupted", {})
        self.uninstalling: bool = store.get("uninstalling", False)
        self.driver: corral.SchedulerDriver | None = None
        self.framework_id: str | None = store.framework_id()
        #: node name -> {observer name -> state}, from the last poll of the ring
        self.views: dict[str, dict[str, str]] = {}
        #: node name -> (address, host id) as the ring reports it
        self.ring_nodes: dict[str, dict[str, Any]] = {}
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._client: Client | None = None
        self._last_revive = 0.0
        #: node name -> its mode (NORMAL, DECOMMISSIONED...) as it reports it
        self.modes: dict[str, str] = {}
        #: when the last poll of the ring began
        self.polled_at = 0.0
        #: node name -> why its agent cannot give it what a config update adds (not kept)
        self.shortfalls: dict[str, str] = {}

    # -- persistence ------------------------------------------------------------------------
    def _save(self, record: NodeRecord) -> None:
        self.store.put(f"node/{record.name}", asdict(record))
        self.records[record.name] = record

    def _forget(self, record: NodeRecord) -> None:
        self.store.delete(f"node/{record.name}")
        self.records.pop(record.name, None)

    # -- framework info -----------------------------------------------------------------------
    def framework_info(self) -> corral.FrameworkInfo:
        info = corral.FrameworkInfo(name=self.config.name, user="", role=self.config.role,
                                    principal=self.config.principal, failover_timeout=7 * 24 * 3600.0,
                                    checkpoint=False)
        info.capabilities.add(type=corral.FrameworkInfo.Capability.PARTITION_AWARE)
        if self.framework_id:
            info.id.value = self.framework_id
        return info

    def start(self, master: str) -> None:
        self.driver = corral.SchedulerDriver(self, self.framework_info(), master)
        self.driver.start()
        known = []
        for record in self.records.values():
            if record.task_id:
                status = corral.task_status(record.task_id, corral.TaskState.Value(record.task_state or "TASK_STAGING"))
                status.agent_id.value = record.agent_id or ""
                known.append(status)
        if known:
            self.driver.track_tasks(known)
        self._poller = threading.Thread(target=self._poll_loop, name="cassandra-poller", daemon=True)
        self._poller.start()

    def stop(self, failover: bool = True) -> None:
        """Stop scheduling; with failover (the default) the nodes keep running."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(10)
        if self.driver is not None:
            self.driver.stop(failover=failover)
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- scheduler callbacks -----------------------------------------------------------------
    def registered(self, driver, framework_id, master_info):  # type: ignore[no-untyped-def]
        with self.lock:
            if framework_id.value != self.framework_id:
                self.framework_id = framework_id.value
                self.store.save_framework_id(framework_id.value)
            log.info("registered as framework %s", framework_id.value)
        driver.revive_offers()

    def reregistered(self, driver, master_info):  # type: ignore[no-untyped-def]
        driver.revive_offers()

    def error(self, driver, message):  # type: ignore[no-untyped-def]
        log.error("framework error: %s", message)

    def status_update(self, driver, status):  # type: ignore[no-untyped-def]
        with self.lock:
            task_id = status.task_id.value
            record = next((r for r in self.records.values() if r.task_id == task_id), None)
            state = status.state
            if record is None:
                if state in _ALIVE:
                    log.warning("killing task %s, which belongs to no node", task_id)
                    driver.kill_task(status.task_id)
                return
            name = corral.state_name(state)
            log.info("%s: %s %s", record.name, name, status.message)
            record.task_state = name
            record.message = status.message
            if state == corral.TASK_RUNNING:
                record.lost_since = None
                words = status.message.split()
                if len(words) == 2 and words[0] == "pid" and words[1].isdigit():
                    record.pid = int(words[1])
                if record.running_since is None:
                    record.running_since = self.clock()
            elif state in (corral.TASK_UNREACHABLE, corral.TASK_UNKNOWN):
                record.lost_since = record.lost_since or self.clock()
            elif state == corral.TASK_GONE_BY_OPERATOR:
                record.agent_gone = True
            elif corral.is_terminal(state):
                record.restarting = False
            self._save(record)
        self.evaluate()

    def resource_offers(self, driver, offers):  # type: ignore[no-untyped-def]
        with self.lock:
            for offer in offers:
                used = self._use_offer(driver, offer)
                if not used:
                    driver.decline_offer(offer.id, corral.Filters(refuse_seconds=2.0))

    # -- the ring ---------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll_ring()
                self.evaluate()
            except Exception:  # the poller must survive anything one round throws
                log.exception("poll round failed")

    def poll_ring(self) -> None:
        """Ask every node with an address how it sees the ring (outside the lock)."""
        with self.lock:
            started = self.clock()
            targets = {r.name: r.address for r in self.records.values() if r.address and r.task_alive}
        views: dict[str, dict[str, str]] = {}
        nodes: dict[str, dict[str, Any]] = {}
        modes: dict[str, str] = {}
        if targets:
            try:
                if self._client is None:
                    self._client = Client(list(targets.values()), connect_timeout=1.0, token_aware=False)
                for name, address in targets.items():
                    try:
                        info = self._client.ring_view(address, timeout=1.0)
                    except StoreError:
                        continue
                    modes[name] = info["mode"]
                    for n in info["nodes"]:
                        state = n["state"] if n["address"] == targets.get(n["name"], n["address"]) else "?" + n["state"]
                        seen = views.setdefault(n["name"], {})
                        # two entries of one name (a replaced node not yet forgotten): not settled
                        seen[name] = state if seen.get(name, state) == state else "?" + state
                        if n["address"] == targets.get(n["name"]):
                            nodes[n["name"]] = n
            except StoreError:
                pass
        with self.lock:
            self.views = views
            self.ring_nodes = nodes
            self.modes = modes
            self.polled_at = started

    def serving(self, record: NodeRecord) -> bool:
        """The node's current task answered the last poll (one begun after it was
        reported running) and serves clients (NORMAL)."""
        return record.task_state == "TASK_RUNNING" and record.running_since is not None and \
            self.polled_at >= record.running_since and self.modes.get(record.name) == "NORMAL"

    def is_up(self, record: NodeRecord) -> bool:
        """It serves, and every other node whose task runs answered the last poll and
        sees it UN at its address (a node that is joining or settling does not count)."""
        if not self.serving(record):
            return False
        seen = self.views.get(record.name, {})
        if seen.get(record.name) != "UN":
            return False
        for other in self.records.values():
            if other is record or other.task_state != "TASK_RUNNING" or not other.address:
                continue
            mode = self.modes.get(other.name)
            if mode is None or other.running_since is None or self.polled_at < other.running_since:
                return False  # no (fresh) answer: it cannot vouch for the node
            if mode == "NORMAL" and seen.get(other.name) != "UN":
                return False
        return True

    # -- plans ------------------------------------------------------------------------------
    def plans(self) -> dict[str, Plan]:
        target = self.config.config_id
        deploy_steps = []
        for record in self._ordered(Goal.RUNNING):
            deploy_steps.append(Step(record.name, self._deploy_status(record, target), self._deploy_message(record)))
        deploy_phase = Phase("node-deploy", deploy_steps, Strategy.SERIAL)
        deploying = {s.name for s in deploy_phase.candidates()}
        # a node the deploy plan is working on (a rolling update) is not also recovered
        recovery_steps = [Step(f"{r.name}:{'replace' if self._replacing(r) else 'restart'}",
                               self._launch_status(r), r.message)
                          for r in self._ordered(Goal.RUNNING) if self._needs_recovery(r) and r.name not in deploying]
        leaving_steps = [Step(f"{r.name}:decommission", self._leaving_status(r), r.leaving or "")
                         for r in self._ordered(Goal.DECOMMISSIONED)]
        out = {
            "deploy": Plan("deploy", [deploy_phase]),
            "recovery": Plan("recovery", [Phase("recover", recovery_steps, Strategy.PARALLEL)]),
            "decommission": Plan("decommission", [Phase("decommission", leaving_steps, Strategy.SERIAL)]),
        }
        if self.uninstalling:
            steps = [Step(f"{r.name}:release", Status.COMPLETE if r.agent_id is None else
                          (Status.STARTED if not r.task_alive else Status.STARTING)) for r in self._ordered(None)]
            steps.append(Step("deregister", Status.COMPLETE if self.finished.is_set() else Status.PENDING))
            out["uninstall"] = Plan("uninstall", [Phase("uninstall", steps, Strategy.SERIAL)])
        for name, plan in out.items():
            plan.interrupted = self.interrupted.get(name, False)
        return out

    def _ordered(self, goal: Goal | None) -> list[NodeRecord]:
        return sorted((r for r in self.records.values() if goal is None or r.goal == goal.value),
                      key=lambda r: r.index)

    def _deploy_status(self, record: NodeRecord, target: str) -> Status:
        status = self._launch_status(record)
        if status is Status.COMPLETE and record.config_id != target:
            return Status.PENDING  # up, on an older config: the update will restart it
        return status

    def _deploy_message(self, record: NodeRecord) -> str:
        growth = self._growth(record) if record.config_id != self.config.config_id else None
        if growth:
            return self.shortfalls.get(record.name) or \
                f"reserving {growth} more on agent {record.agent_id} before the restart"
        return record.message

    def _launch_status(self, record: NodeRecord) -> Status:
        if record.task_id is None or (record.task_state and not record.task_alive):
            return Status.PENDING
        if record.launching:
            return Status.PREPARED
        if record.task_state != "TASK_RUNNING":
            return Status.STARTING
        return Status.COMPLETE if self.is_up(record) else Status.STARTED

    def _leaving_status(self, record: NodeRecord) -> Status:
        return {None: Status.PENDING, Leaving.REQUESTED.value: Status.STARTING,
                Leaving.KILLING.value: Status.STARTED, Leaving.RELEASING.value: Status.STARTED}[record.leaving]

    def _needs_recovery(self, record: NodeRecord) -> bool:
        return record.joined and record.goal == Goal.RUNNING.value and not self.serving(record)

    def _replacing(self, record: NodeRecord) -> bool:
        return record.replace_address is not None

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self) -> None:
        """Decide what to do next from the records, the ring and the plans."""
        with self.lock:
            if self.driver is None:
                return
            now = self.clock()
            if self.uninstalling:
                self._evaluate_uninstall()
                return
            for record in list(self.records.values()):
                seen = self.ring_nodes.get(record.name)
                if seen is not None and (seen["host_id"], list(seen["tokens"])) != (record.host_id, record.tokens):
                    record.host_id, record.tokens = seen["host_id"], list(seen["tokens"])
                    self._save(record)
                if record.goal == Goal.RUNNING.value and self.is_up(record):
                    if not record.joined or record.replace_address:
                        record.joined = True
                        record.replace_address = None  # joined: never pass --replace again
                        self._save(record)
                if record.goal != Goal.RUNNING.value:
                    continue
                if record.agent_gone:
                    self.replace(record.name, f"agent {record.agent_id} is gone")
                elif record.lost_since is not None and self.config.auto_replace and \
                        now - record.lost_since >= self.config.permanent_failure_timeout:
                    self.replace(record.name, f"agent {record.agent_id} lost for {now - record.lost_since:.0f}s, "
                                              f"past the permanent-failure timeout")
            plans = self.plans()
            allowed = {s.name for s in plans["deploy"].candidates()}
            target = self.config.config_id
            for record in self._ordered(Goal.RUNNING):
                if record.name in allowed and record.config_id != target and record.task_alive \
                        and not record.restarting and self._others_up(record):
                    if self._growth(record):
                        self._revive(now)  # an offer of its agent reserves the extra (_grow), then it restarts
                        continue
                    log.info("%s: rolling to config %s", record.name, target)
                    self._kill(record, restarting=True)
            for step in plans["decommission"].candidates():
                self._advance_leaving(self.records[step.name.split(":")[0]])
            if self._launchable():
                self._revive(now)

    def _revive(self, now: float) -> None:
        """Ask for offers again (clearing decline filters), at most once a second."""
        if self.driver is not None and now - self._last_revive >= 1.0:
            self._last_revive = now
            self.driver.revive_offers()

    def _others_up(self, record: NodeRecord) -> bool:
        return all(self.is_up(r) for r in self.records.values() if r is not record and r.goal == Goal.RUNNING.value)

    def _launchable(self) -> list[NodeRecord]:
        """Nodes that need a task now (and whose plan lets them have one)."""
        plans = self.plans()
        allowed = {s.name for s in plans["deploy"].candidates()}
        allowed |= {s.name.split(":")[0] for s in plans["recovery"].candidates()}
        out = []
        for record in self._ordered(Goal.RUNNING):
            if record.task_alive or record.launching or record.name not in allowed:
                continue
            if record.task_state in ("TASK_UNREACHABLE", "TASK_UNKNOWN"):
                continue  # its agent may come back with it
            out.append(record)
        return out

    def _kill(self, record: NodeRecord, restarting: bool = False) -> None:
        record.restarting = restarting
        self._save(record)
        if record.task_id and self.driver is not None:
            self.driver.kill_task(corral.TaskID(value=record.task_id))

    # -- offers ------------------------------------------------------------------------------
    def _use_offer(self, driver: corral.SchedulerDriver, offer: corral.Offer) -> bool:
        role = self.config.role
        view = OfferView.of(offer, role)
        agent = offer.agent_id.value
        owner = next((r for r in self.records.values() if r.agent_id == agent), None)
        if self.uninstalling or owner is None or owner.leaving == Leaving.RELEASING.value:
            if view.reserved or view.volumes:
                log.info("releasing the role's resources on agent %s: %s volume(s)", agent, len(view.volumes))
                driver.accept_offers([offer.id], view.releasing(), corral.Filters(refuse_seconds=1.0))
                return True
            if owner is not None and owner.leaving == Leaving.RELEASING.value:
                log.info("%s: resources released; the node is gone", owner.name)
                self._forget(owner)
            if self.uninstalling and owner is not None and not owner.task_alive:
                owner.agent_id = None
                self._save(owner)
            if owner is None and not self.uninstalling:
                return self._place(driver, offer, view)
            return False
        if owner not in self._launchable():
            if self._grow(driver, offer, view, owner):
                return True
            stale = [pid for pid in view.volumes if pid != owner.volume_id]
            if stale:
                driver.accept_offers([offer.id], OfferView(Resources(), Resources(), {
                    pid: view.volumes[pid] for pid in stale}).releasing(), corral.Filters(refuse_seconds=1.0))
                return True
            return False
        return self._launch(driver, offer, view, owner)

    def _place(self, driver: corral.SchedulerDriver, offer: corral.Offer, view: OfferView) -> bool:
        waiting = [r for r in self._launchable() if r.agent_id is None]
        if not waiting:
            return False
        record = waiting[0]
        attributes = offer_attributes(offer)
        placed = Placement([r.attributes for r in self._ordered(Goal.RUNNING) if r.attributes and r.agent_id])
        if not allows(self.config.constraints, offer, placed):
            record.message = f"agent {offer.agent_id.value} ({offer.hostname}) is ruled out by the placement " \
                             f"{json.dumps(self.config.placement)}"
            return False
        port = self._free_port(offer, view)
        if port is None or not view.unreserved.contains(self.config.resources + Resources.parse(f"ports:[{port}-{port}]")):
            return False
        record.agent_id = offer.agent_id.value
        record.hostname = offer.hostname
        record.attributes = attributes
        record.port = port
        record.volume_id = f"{self.config.name}-{record.name}-{uuid.uuid4().hex[:8]}"
        log.info("%s: placed on agent %s (%s:%d)", record.name, record.agent_id, record.hostname, port)
        return self._launch(driver, offer, view, record)

    def _free_port(self, offer: corral.Offer, view: OfferView) -> int | None:
        taken = {r.port for r in self.records.values() if r.hostname == offer.hostname and r.port}
        for begin, end in view.unreserved.ports:
            for port in range(begin, end + 1):
                if port not in taken:
                    return port
        return None

    def _node_resources(self, record: NodeRecord) -> Resources:
        return self.config.resources + Resources.parse(f"ports:[{record.port}-{record.port}]")

    def _scalars(self) -> Resources:
        """What the target config reserves for a node beside its port and volume."""
        resources = self.config.resources
        return resources - Resources.parse(f"disk:{resources.disk:g}")

    def _growth(self, record: NodeRecord) -> Resources:
        """What the target config needs reserved for the node beyond its reservation."""
        if record.reserved is None:
            return Resources()
        return _beyond(self._scalars(), Resources.parse(record.reserved))

    def _grow(self, driver: corral.SchedulerDriver, offer: corral.Offer, view: OfferView,
              record: NodeRecord) -> bool:
        """RESERVE on the node's agent what its next config needs beyond its reservation,
        while it still runs, when the deploy plan is about to roll it."""
        growth = self._growth(record)
        if not growth or not record.task_alive or record.name not in {
                s.name for s in self.plans()["deploy"].candidates()}:
            return False
        if not view.unreserved.contains(growth):
            self.shortfalls[record.name] = (f"agent {record.agent_id} lacks {growth} to grow {record.name} (it "
                                            f"offers {view.unreserved or 'nothing'}); the node runs on meanwhile")
            return False
        self.shortfalls.pop(record.name, None)
        record.reserved = (Resources.parse(record.reserved or "") + growth).to_text()
        record.message = ""
        self._save(record)  # before the reservation is asked for
        log.info("%s: reserving %s more on agent %s before it restarts", record.name, growth, record.agent_id)
        driver.accept_offers([offer.id], [reserve(growth, self.config.role, self.config.principal)],
                             corral.Filters(refuse_seconds=1.0))
        return True

    def _launch(self, driver: corral.SchedulerDriver, offer: corral.Offer, view: OfferView,
                record: NodeRecord) -> bool:
        role, principal = self.config.role, self.config.principal
        plain = self._node_resources(record)
        disk = plain.disk
        wanted = reserved_to(plain, role, principal)
        data = volume(role, principal, disk, record.volume_id, DATA_PATH)  # type: ignore[arg-type]
        ops: list[corral.Offer.Operation] = []
        stale = {pid: v for pid, v in view.volumes.items() if pid != record.volume_id}
        if stale:
            ops += OfferView(Resources(), Resources(), stale).releasing()
        if record.volume_id in view.volumes:
            beside = plain - Resources.parse(f"disk:{disk:g}")
            lacking = _beyond(beside, view.reserved)
            excess = _beyond(view.reserved, beside)
            if lacking and not view.unreserved.contains(lacking):
                record.message = f"agent {offer.agent_id.value} lacks {lacking} for {record.name}"
                return False
            if lacking:
                ops.append(reserve(lacking, role, principal))
            if excess:
                ops.append(unreserve(reserved_to(excess, role, principal)))
        elif view.reserved.contains(wanted):
            ops.append(create_volume(data))
        elif view.unreserved.contains(plain):
            ops += [reserve(plain, role, principal), create_volume(data)]
        else:
            record.message = f"agent {offer.agent_id.value} lacks {plain} (it offers {view.unreserved})"
            return False
        task_resources = Resources.from_protos(
            [r for r in wanted.to_protos() if r.name != "disk"] + [data])
        task_id = f"{record.name}__{uuid.uuid4().hex[:12]}"
        task = corral.command_task(record.name, self._command(record), offer.agent_id, task_resources,
                                   task_id=task_id, grace_seconds=KILL_GRACE)
        record.task_id, record.task_state = task_id, None
        record.running_since = record.pid = None
        record.config_id = self.config.config_id
        record.reserved = self._scalars().to_text()
        record.message = ""
        self._save(record)  # before the launch leaves: a restarted scheduler knows the task
        ops.append(Op(type=Op.LAUNCH, launch=Op.Launch(task_infos=[task])))
        log.info("%s: launching %s on agent %s (%s)", record.name, task_id, record.agent_id,
                 ", ".join(Op.Type.Name(op.type) for op in ops))
        driver.accept_offers([offer.id], ops, corral.Filters(refuse_seconds=1.0))
        return True

    def seeds(self) -> list[str]:
        seeds = [r.address for r in self._ordered(Goal.RUNNING) if r.address][:2]
        return [s for s in seeds if s]

    def _command(self, record: NodeRecord) -> list[str]:
        argv = [self.python, "-m", "corral.examples.cassandra", "node", "--name", record.name,
                "--listen", record.address, "--data", DATA_PATH, "--cluster", self.config.name,
                "--seeds", ",".join(self.seeds() or [record.address]), *self.config.node_flags()]
        if record.replace_address:
            argv += ["--replace", record.replace_address]
        return argv  # type: ignore[return-value]

    # -- operations ----------------------------------------------------------------------------
    def node(self, name: str) -> NodeRecord:
        record = self.records.get(name)
        if record is None:
            raise KeyError(f"unknown node {name!r}: the nodes are {', '.join(sorted(self.records, key=node_index))}")
        return record

    def restart(self, name: str) -> NodeRecord:
        """Kill the node's task; it is relaunched in place (same reservation and volume)."""
        with self.lock:
            record = self.node(name)
            self._kill(record, restarting=False)
            return record

    def replace(self, name: str, why: str = "operator request") -> NodeRecord:
        """Give the node's resources up and start it elsewhere, taking the old node's
        place in the ring (its data streamed from the replicas)."""
        with self.lock:
            record = self.node(name)
            if record.task_alive and self.driver is not None and record.task_id:
                self.driver.kill_task(corral.TaskID(value=record.task_id))
            old = record.address
            log.info("%s: replacing (%s); its old agent %s keeps volume %s until it is released", name, why,
                     record.agent_id, record.volume_id)
            record.replace_address = old if record.joined else None
            record.agent_id = record.hostname = record.port = record.volume_id = record.reserved = None
            record.attributes = None
            record.task_id = record.task_state = record.running_since = record.pid = None
            record.lost_since = None
            record.agent_gone = record.restarting = False
            record.replacements += 1
            record.message = f"replacing: {why}"
            self._save(record)
            return record

    def update_config(self, changes: Any) -> ServiceConfig:
        with self.lock:
            config = self.config.updated(changes)
            self.store.put("config", config.to_dict())
            self.config = config
            return config

    def scale(self, count: Any) -> str:
        with self.lock:
            if isinstance(count, bool) or not isinstance(count, int):
                raise ConfigError(f"invalid node count {count!r}: expected a whole number")
            if count < self.config.replication:
                raise ConfigError(f"cannot scale to {count} node(s): the replication factor is "
                                  f"{self.config.replication}, so at least {self.config.replication} are needed")
            running = self._ordered(Goal.RUNNING)
            if any(r.goal == Goal.DECOMMISSIONED.value for r in self.records.values()) and count > len(running):
                raise ConfigError("a scale-down is still in progress; scale up once it is complete")
            with self.store.transaction():
                if count > len(running):
                    start = max((r.index for r in self.records.values()), default=-1) + 1
                    for i in range(start, start + count - len(running)):
                        self._save(NodeRecord(f"node-{i}", i))
                else:
                    for record in running[count:]:
                        record.goal = Goal.DECOMMISSIONED.value
                        self._save(record)
                self.config.nodes = count
                self.store.put("config", self.config.to_dict())
            return f"scaling to {count} node(s)"

    def _advance_leaving(self, record: NodeRecord) -> None:
        if record.leaving is None:
            if not record.task_alive or record.address is None:
                record.leaving = Leaving.KILLING.value
            else:
                try:
                    client = self._client or Client([record.address], token_aware=False)
                    self._client = client
                    client.decommission(record.address)
                except StoreError as exc:
                    record.message = f"decommission not accepted yet: {exc}"
                    self._save(record)
                    return
                record.leaving = Leaving.REQUESTED.value
            self._save(record)
        elif record.leaving == Leaving.REQUESTED.value:
            # positive evidence only: the node itself says it has left the ring
            if self.modes.get(record.name) == "DECOMMISSIONED" or not record.task_alive:
                record.leaving = Leaving.KILLING.value
                self._save(record)
        if record.leaving == Leaving.KILLING.value:
            if record.task_alive:
                self._kill(record)
            else:
                record.leaving = Leaving.RELEASING.value
                self._save(record)
                self._revive(self.clock())

    def interrupt(self, plan: str, interrupted: bool) -> None:
        with self.lock:
            if plan not in self.plans():
                raise KeyError(f"unknown plan {plan!r}: the plans are {', '.join(sorted(self.plans()))}")
            self.interrupted[plan] = interrupted
            self.store.put("interrupted", self.interrupted)

    def uninstall(self) -> None:
        with self.lock:
            self.uninstalling = True
            self.store.put("uninstalling", True)
        self.evaluate()

    def _evaluate_uninstall(self) -> None:
        for record in self.records.values():
            if record.task_alive:
                self._kill(record)
        if all(r.agent_id is None for r in self.records.values()):
            if not self.finished.is_set():
                log.info("uninstalled: every node killed, every reservation and volume released")
                self.finished.set()
            return
        self._revive(self.clock())

    # -- views ------------------------------------------------------------------------------------
    def endpoints(self) -> dict[str, Any]:
        with self.lock:
            nodes = {r.name: r.address for r in self._ordered(Goal.RUNNING) if r.address}
            return {"address": [a for a in nodes.values() if a], "nodes": nodes}

    def info(self, name: str) -> dict[str, Any]:
        with self.lock:
            record = self.node(name)
            view = dict(asdict(record), address=record.address, up=self.is_up(record),
                        ring=self.ring_nodes.get(name), seen_by=self.views.get(name, {}))
            return view


def _beyond(wanted: Resources, held: Resources) -> Resources:
    """The scalars (disk apart: volumes keep their size) of `wanted` beyond what `held`
    has of each, unreserved."""
    parts = []
    for name in sorted((wanted.names() | held.names()) - {"disk"}):
        extra = round(wanted.scalar(name) - held.scalar(name), 3)
        if extra > 0:
            parts.append(f"{name}:{extra:g}")
    return Resources.parse(";".join(parts)) if parts else Resources()


def node_index(name: str) -> int:
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
