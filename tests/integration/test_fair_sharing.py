"""Two frameworks with opposite needs share real agents by DRF: each launches one task
per offer, and their dominant shares end up within one task of each other."""
from __future__ import annotations

import threading
from pathlib import Path

import corral
from corral.testing.cluster import LocalCluster, wait_for

TOTAL = corral.Resources.parse("cpus:8;mem:8192")


class OnePerOffer(corral.Scheduler):
    def __init__(self, task: str, everyone_registered: threading.Barrier) -> None:
        self.need = corral.Resources.parse(task)
        self.running: set[str] = set()
        self.launched = 0
        self.lock = threading.Lock()
        self.everyone_registered = everyone_registered

    def registered(self, driver, framework_id, master_info):
        # callbacks run in order: no offer is taken before both frameworks are there (the
        # first to subscribe could otherwise fill the agents before the other competes)
        self.everyone_registered.wait(30)

    def resource_offers(self, driver, offers):
        for offer in offers:
            if corral.Resources.from_protos(offer.resources).contains(self.need):
                with self.lock:
                    self.launched += 1
                    name = f"t{self.launched}"
                driver.launch_tasks(offer.id, [corral.command_task(name, "sleep 600", offer.agent_id, self.need,
                                                                   task_id=name)],
                                    corral.Filters(refuse_seconds=0))
            else:
                driver.decline_offer(offer.id, corral.Filters(refuse_seconds=0.5))

    def status_update(self, driver, status):
        with self.lock:
            if status.state == corral.TASK_RUNNING:
                self.running.add(status.task_id.value)
            elif corral.is_terminal(status.state):
                self.running.discard(status.task_id.value)

    def dominant_share(self) -> float:
        with self.lock:
            n = len(self.running)
        return max(n * self.need.cpus / TOTAL.cpus, n * self.need.mem / TOTAL.mem)


def test_cpu_heavy_and_memory_heavy_frameworks_converge_to_drf_shares(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, agents=2, resources="cpus:4;mem:4096") as cluster:
        both = threading.Barrier(2)
        cpu_heavy, mem_heavy = OnePerOffer("cpus:1;mem:256", both), OnePerOffer("cpus:0.25;mem:1024", both)
        drivers = [corral.SchedulerDriver(s, corral.FrameworkInfo(name=n, user=""), cluster.master_address)
                   for s, n in ((cpu_heavy, "cpu-heavy"), (mem_heavy, "mem-heavy"))]
        for driver in drivers:
            driver.start()
        try:
            def lower_share_fits_nowhere() -> bool:
                """The DRF end state: nothing in flight, and the framework further below its
                share cannot fit one more task on any agent (so DRF gave it all it could)."""
                if any(f.launched != len(f.running) or not f.running for f in (cpu_heavy, mem_heavy)):
                    return False
                lower = min((cpu_heavy, mem_heavy), key=lambda f: f.dominant_share())
                for agent in cluster.state()["agents"]:
                    free = {k: agent["resources"][k] - agent["used_resources"].get(k, 0.0) for k in ("cpus", "mem")}
                    if free["cpus"] >= lower.need.cpus and free["mem"] >= lower.need.mem:
                        return False
                return True

            wait_for(lower_share_fits_nowhere, 60, "the DRF end state")
            a, b = cpu_heavy.dominant_share(), mem_heavy.dominant_share()
            print(f"dominant shares: cpu-heavy {a:.3f} ({len(cpu_heavy.running)} tasks), "
                  f"mem-heavy {b:.3f} ({len(mem_heavy.running)} tasks)")
            assert min(a, b) >= 0.25 and max(a, b) >= 0.5  # shared out, not left idle
        finally:
            for driver in drivers:
                driver.stop()
