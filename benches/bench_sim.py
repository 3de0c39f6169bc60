"""Simulator speed (issue 3: >= 100 fault-plan seeds of a 3-agent, 50-task cluster per
minute).

One seed: `SimCluster(agents=3, seed=s, faults=FaultPlan.lossy(0.2, 0.1,
types=RETRIED_TYPES))` (20% of the retried messages dropped, 10% duplicated, as the
lossy tests use), one scheduler launching 50 command tasks (a few per offer; commands
that finish, fail or sleep in simulated time), run until every task has reached a
terminal state at the scheduler and then until the cluster has settled (every update
acknowledged back to its agent, every task forgotten by the master). One round runs
SEEDS seeds one after another in this process (one core).

Run: python -m pytest benches/bench_sim.py --benchmark-only -s
"""
from __future__ import annotations

from corral import Scheduler, command_task, is_terminal
from corral.protos import corral_pb2 as pb
from corral.testing import RETRIED_TYPES, FaultPlan, SimCluster

SEEDS = 20
TASKS = 50
COMMANDS = ["exit 0", "sleep 3; exit 0", "exit 1", "sleep 1; true", "sleep 2; false"]


class FiftyTasks(Scheduler):
    def __init__(self) -> None:
        self.todo = [(f"task-{i}", COMMANDS[i % len(COMMANDS)]) for i in range(TASKS)]
        self.final: dict[str, int] = {}

    def resource_offers(self, driver, offers):
        for offer in offers:
            cpus = sum(r.scalar.value for r in offer.resources if r.name == "cpus")
            mem = sum(r.scalar.value for r in offer.resources if r.name == "mem")
            fit = min(4, int(cpus / 0.5 + 1e-9), int(mem / 64 + 1e-9))
            take, self.todo = self.todo[:fit], self.todo[fit:]
            if not take:
                driver.decline_offer(offer.id, pb.Filters(refuse_seconds=60.0))
                continue
            driver.launch_tasks(offer.id, [command_task(tid, cmd, offer.agent_id, "cpus:0.5;mem:64", task_id=tid)
                                           for tid, cmd in take])

    def status_update(self, driver, status):
        if is_terminal(status.state) and status.reason != pb.TaskStatus.REASON_RECONCILIATION:
            self.final[status.task_id.value] = status.state

    def done(self) -> bool:
        return len(self.final) == TASKS


def run_seed(seed: int) -> float:
    cluster = SimCluster(agents=3, seed=seed, faults=FaultPlan.lossy(0.2, 0.1, types=RETRIED_TYPES))
    user = FiftyTasks()
    cluster.add_scheduler(user)
    assert cluster.run_until(user.done, max_time=20000.0), f"seed {seed}: {len(user.final)}/{TASKS} tasks ended"

    def settled() -> bool:
        return (all(not fw.tasks for fw in cluster.master.frameworks.values())
                and all(len(a.updates) == 0 and not a.tasks for a in cluster.agents))

    assert cluster.run_until(settled, max_time=20000.0), f"seed {seed} did not settle"
    return cluster.clock.now


def test_sim_lossy_seeds(benchmark):
    seeds = iter(range(10**6))

    def once():
        for _ in range(SEEDS):
            run_seed(next(seeds))

    benchmark.pedantic(once, rounds=3, warmup_rounds=0)
    per_seed = benchmark.stats.stats.median / SEEDS
    benchmark.extra_info.update(seeds_per_round=SEEDS, tasks=TASKS, agents=3,
                                seconds_per_seed=per_seed, seeds_per_minute=60 / per_seed)
    print(f"\nsimulator: {per_seed * 1000:.0f} ms per seed, {60 / per_seed:.0f} seeds/minute (target 100)")
