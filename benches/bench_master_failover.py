"""Master failover: how long a newly elected master takes until every agent the registry
admitted has reregistered with its tasks (Mesos' "time-to-completion" of a failover).

The new master starts from what the registry recovered (N admitted agents, no
frameworks) and is handed each agent's `ReregisterAgent` as the agent engine writes it
(the agent's info, a report per task with its TaskInfo and state, the frameworks'
infos), parsed from its bytes as a runtime would; every message the master sends in
answer (AgentReregistered, and the registry writes it asks for) is serialised. Timed:
from the first report until the master has no agent left to recover; all tasks and the
frameworks (recovered from the reports, disconnected until their schedulers
resubscribe) are then checked. The master engine in one thread, no sockets: the part of
a failover that grows with the cluster.

Shapes from Mesos' own failover benchmark (agents x frameworks x tasks per framework
and agent) and the published anchor (Mesos 1.5, synthetic agents): 10k agents with 100k
tasks took about 4.5 s to complete a failover (`../shared/docs/MESOS-SEMANTICS.md`).

Run: python -m pytest benches/bench_master_failover.py --benchmark-only -s
"""
from __future__ import annotations

import gc

import pytest

from corral.engines.base import Send
from corral.engines.master import MasterConfig, MasterEngine, RegistryState
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.runtime import GC_YOUNG_THRESHOLD
from corral.tasks import command_task

TASK_RESOURCES = "cpus:0.01;mem:1"
#: (agents, frameworks, tasks per framework on each agent): 100k tasks each
SHAPES = [(10_000, 1, 10), (2_000, 5, 10), (20_000, 1, 5)]
#: Mesos 1.5 on 10k agents with 100k tasks (the published anchor)
MESOS_10K_AGENTS_100K_TASKS_S = 4.5


def agent_reports(agents: int, frameworks: int, per_framework: int) -> tuple[RegistryState, list[tuple[str, bytes]]]:
    """The registry a new master recovers, and each agent's ReregisterAgent (its
    transport address, its bytes)."""
    infos = [pb.FrameworkInfo(user="bench", name=f"fw{f}", id=pb.FrameworkID(value=f"fw-{f}"),
                              failover_timeout=3600.0) for f in range(frameworks)]
    task_resources = Resources.parse(TASK_RESOURCES)
    per_agent = frameworks * per_framework
    total = Resources.parse(f"cpus:{task_resources.cpus * per_agent + 1:.2f};mem:{task_resources.mem * per_agent + 64:.0f}")
    registry = RegistryState()
    reports = []
    for a in range(agents):
        agent_id = f"agent-{a}"
        address = f"tcp://10.{a // 62500}.{a // 250 % 250}.{a % 250 + 1}:5051"
        info = pb.AgentInfo(hostname=f"host{a}", id=pb.AgentID(value=agent_id), resources=total.to_protos(),
                            transport=address)
        registry.admitted[agent_id] = info
        msg = pb.ReregisterAgent(agent=info, version="bench")
        for f, fw in enumerate(infos):
            for t in range(per_framework):
                tid = f"task-{a}-{f}-{t}"
                report = msg.tasks.add(task=command_task(tid, "sleep 1000", agent_id, TASK_RESOURCES, task_id=tid),
                                       state=pb.TASK_RUNNING)
                report.framework_id.value = fw.id.value
        msg.frameworks.extend(infos)
        reports.append((address, msg.SerializeToString()))
    return registry, reports


def fail_over(registry: RegistryState, reports: list[tuple[str, bytes]]) -> MasterEngine:
    """A new master handed every report, its answers serialised; returned once no
    admitted agent is left to come back."""
    info = pb.MasterInfo(id="m2", hostname="master", port=5050, transport="tcp://127.0.0.1:5050")
    master = MasterEngine(info, MasterConfig(ping_interval=1e9), now=0.0, registry=registry)
    parse = pb.ReregisterAgent.FromString
    for address, data in reports:
        master.handle(address, parse(data), 1.0)
        for action in master.take_actions():
            if type(action) is Send:
                action.body.SerializeToString()
    assert not master.recovering, f"{len(master.recovering)} agents not recovered"
    return master


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{a}agents-{f}fw-{t}tasks" for a, f, t in SHAPES])
def test_master_failover_time_to_completion(benchmark, shape):
    agents, frameworks, per_framework = shape
    registry, reports = agent_reports(agents, frameworks, per_framework)
    tasks = agents * frameworks * per_framework
    young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)  # as every runtime sets it
    try:
        master = benchmark.pedantic(fail_over, args=(registry, reports), rounds=3, warmup_rounds=0)
    finally:
        gc.set_threshold(young, middle, old)
    assert len(master.agents) == agents
    assert len(master.frameworks) == frameworks
    assert sum(len(fw.tasks) for fw in master.frameworks.values()) == tasks
    assert not any(fw.connected for fw in master.frameworks.values())  # until their schedulers resubscribe
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(agents=agents, frameworks=frameworks, tasks=tasks, seconds=median)
    anchor = ""
    if (agents, tasks) == (10_000, 100_000):
        anchor = f"; Mesos 1.5 published {MESOS_10K_AGENTS_100K_TASKS_S} s ({MESOS_10K_AGENTS_100K_TASKS_S / median:.1f}x)"
    print(f"\nmaster failover, {agents} agents x {frameworks} frameworks, {tasks} tasks: {median:.2f} s "
          f"({agents / median:,.0f} agents/s, {tasks / median:,.0f} tasks/s){anchor}")
