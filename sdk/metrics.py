"""`/metrics` of the master and the agent, in Prometheus' text format (prometheus_client).

Mesos' metric names, Prometheus style: `master/tasks_running` is
`corral_master_tasks{state="running"}`, `master/tasks_finished` is
`corral_master_tasks_terminal_total{state="finished"}`, `master/cpus_used` is
`corral_master_resources{resource="cpus",type="used"}`, the engines' counters are
`corral_master_<name>_total` and `corral_agent_<name>_total`, the transport's
`corral_transport_<name>_total` (malformed, unknown_type, undecodable, ...).

Gauges and counters are read from the daemon at each scrape (under its runtime lock),
so keeping them costs nothing between scrapes. Two histograms are observed:
`corral_master_allocation_cycle_seconds` (each allocation cycle, timed around the
allocator) and `corral_master_status_update_relay_seconds` (from an update's timestamp,
set where it was sent, to the master relaying it; the master samples one status-update
message in RELAY_SAMPLE_EVERY, and the samples are observed at the next scrape).

Each daemon has a registry of its own, so that several run in one process (tests).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from corral.engines.common import TERMINAL_STATES
from corral.engines.master.snapshot import COUNTED_ENDS, STATE_NAMES
from corral.protos import corral_pb2 as pb
from corral.resources import Resources

if TYPE_CHECKING:
    from corral.agent.daemon import AgentDaemon
    from corral.engines.master.allocator import Allocator
    from corral.master.daemon import MasterDaemon
    from corral.runtime import Runtime

#: the scalar resources reported (total, used, offered)
SCALARS = ("cpus", "mem", "disk", "gpus")
ALLOCATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RELAY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _state_label(state: int) -> str:
    return STATE_NAMES[state].removeprefix("TASK_").lower()


def _transport(runtime: Runtime) -> Iterator[Metric]:
    for name, value in sorted(runtime.metrics().items()):
        yield CounterMetricFamily(f"corral_transport_{name}", f"transport: {name.replace('_', ' ')}", value=value)


def _counters(prefix: str, counters: dict[str, int]) -> Iterator[Metric]:
    for name, value in sorted(counters.items()):
        yield CounterMetricFamily(f"{prefix}_{name}", f"{name.replace('_', ' ')} (Mesos {prefix[7:]}/{name})",
                                  value=value)


def _resources(prefix: str, kinds: Iterable[tuple[str, Any]]) -> Metric:
    family = GaugeMetricFamily(f"{prefix}_resources", "scalar resources, by resource and type (total, used, offered)",
                               labels=["resource", "type"])
    for kind, resources in kinds:
        for name in SCALARS:
            family.add_metric([name, kind], resources.scalar(name))
    return family


class Metrics:
    """A daemon's `/metrics`: its registry and the text Prometheus scrapes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(collect))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())


# ------------------------------------------------------------------------ master
class MasterMetrics(Metrics):
    def __init__(self, daemon: MasterDaemon) -> None:
        self.daemon = daemon
        super().__init__(self._collect)
        self.allocation_cycle = Histogram("corral_master_allocation_cycle_seconds", "time of one allocation cycle",
                                          registry=self.registry, buckets=ALLOCATION_BUCKETS)
        self.relay_latency = Histogram("corral_master_status_update_relay_seconds",
                                       "from a status update's timestamp to the master relaying it (sampled)",
                                       registry=self.registry, buckets=RELAY_BUCKETS)
        time_allocation_cycles(daemon.engine.allocator, self.allocation_cycle.observe)

    def _collect(self) -> Iterator[Metric]:
        daemon = self.daemon
        engine = daemon.engine
        with daemon.runtime.lock:
            samples = list(engine.relay_samples)
            engine.relay_samples.clear()
            # (the engine's clock may not be wall time: each sample's age on that clock
            # says when it was relayed, in the wall time of the status's timestamp)
            runtime_now, wall_now = daemon.runtime.clock(), time.time()
            agents = list(engine.agents.values())
            frameworks = list(engine.frameworks.values())
            active: dict[int, int] = {}
            for fw in frameworks:
                for task in fw.tasks.values():
                    if task.state not in TERMINAL_STATES:
                        active[task.state] = active.get(task.state, 0) + 1
            ends = dict(engine.task_ends)
            counters = dict(engine.counters)
            completed = len(engine.completed_frameworks)
            offers = len(engine.offers)
            total = sum((a.total for a in agents), start=Resources())
            used = sum((a.used for a in agents), start=Resources())
            offered = sum((a.offered for a in agents), start=Resources())
        for relayed_at, status in samples:
            relayed_wall = wall_now - (runtime_now - relayed_at)
            self.relay_latency.observe(max(0.0, relayed_wall - pb.TaskStatus.FromString(status).timestamp))
        prefix = "corral_master"
        tasks = GaugeMetricFamily(f"{prefix}_tasks", "active tasks by state", labels=["state"])
        for state in (pb.TASK_STAGING, pb.TASK_STARTING, pb.TASK_RUNNING, pb.TASK_KILLING, pb.TASK_UNREACHABLE):
            tasks.add_metric([_state_label(state)], active.get(state, 0))
        yield tasks
        ended = CounterMetricFamily(f"{prefix}_tasks_terminal", "tasks that reached a terminal state, by state",
                                    labels=["state"])
        for state in COUNTED_ENDS:
            ended.add_metric([_state_label(state)], ends.get(state, 0))
        yield ended
        by_state = GaugeMetricFamily(f"{prefix}_agents", "agents by state", labels=["state"])
        for state in ("registered", "disconnected", "unreachable"):
            by_state.add_metric([state], sum(1 for a in agents if a.state.value == state))
        yield by_state
        fws = GaugeMetricFamily(f"{prefix}_frameworks", "frameworks by state (completed: removed, still shown)",
                                labels=["state"])
        fws.add_metric(["active"], sum(1 for f in frameworks if f.connected))
        fws.add_metric(["inactive"], sum(1 for f in frameworks if not f.connected))
        fws.add_metric(["completed"], completed)
        yield fws
        yield _resources(prefix, [("total", total), ("used", used), ("offered", offered)])
        yield GaugeMetricFamily(f"{prefix}_outstanding_offers", "offers not yet accepted, declined or rescinded",
                                value=offers)
        yield GaugeMetricFamily(f"{prefix}_elected", "1 if this master is the leader", value=1)
        yield GaugeMetricFamily(f"{prefix}_uptime_seconds", "seconds since the master started",
                                value=daemon.uptime())
        yield from _counters(prefix, counters)
        yield from _transport(daemon.runtime)


def time_allocation_cycles(allocator: Allocator, observe: Callable[[float], None]) -> None:
    """Time each of `allocator`'s allocation cycles (its `allocate` calls)."""
    allocate = allocator.allocate

    def timed(now: float) -> Any:
        started = time.perf_counter()
        try:
            return allocate(now)
        finally:
            observe(time.perf_counter() - started)

    allocator.allocate = timed  # type: ignore[method-assign]


# ------------------------------------------------------------------------ agent
class AgentMetrics(Metrics):
    def __init__(self, daemon: AgentDaemon) -> None:
        self.daemon = daemon
        super().__init__(self._collect)

    def _collect(self) -> Iterator[Metric]:
        daemon = self.daemon
        engine = daemon.engine
        with daemon.runtime.lock:
            registered = int(engine.connection.value == "registered")
            executors = len(engine.executors)
            states: dict[int, int] = {}
            for task in engine.tasks.values():
                states[task.state] = states.get(task.state, 0) + 1
            pending = len(engine.updates)
            counters = dict(engine.counters)
        prefix = "corral_agent"
        yield GaugeMetricFamily(f"{prefix}_registered", "1 if the agent is registered with a master", value=registered)
        yield GaugeMetricFamily(f"{prefix}_executors", "executors running", value=executors)
        tasks = GaugeMetricFamily(f"{prefix}_tasks", "tasks the agent holds, by state", labels=["state"])
        for state in sorted(states):
            tasks.add_metric([_state_label(state)], states[state])
        yield tasks
        yield GaugeMetricFamily(f"{prefix}_pending_status_updates", "status updates not yet acknowledged",
                                value=pending)
        yield _resources(prefix, [("total", daemon.flags.resources)])
        yield GaugeMetricFamily(f"{prefix}_uptime_seconds", "seconds since the agent started",
                                value=daemon.uptime())
        yield from _counters(prefix, counters)
        yield from _transport(daemon.runtime)
