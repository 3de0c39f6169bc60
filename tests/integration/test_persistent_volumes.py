"""A stateful task on a real cluster: it reserves resources, creates a persistent volume,
writes to it and is killed; a second task, launched from the re-offered reserved
resources, finds the data intact. Destroying the volume deletes it."""
from __future__ import annotations

import threading
from pathlib import Path

import corral
from corral.protos import corral_pb2 as pb
from corral.resources import Resources
from corral.testing.cluster import LocalCluster, wait_for

Op = pb.Offer.Operation
ROLE = "db"
DYNAMIC = pb.Resource.ReservationInfo.DYNAMIC


def reserved(text: str) -> list[pb.Resource]:
    out = []
    for r in Resources.parse(text).to_protos():
        r.reservations.add(type=DYNAMIC, role=ROLE)
        r.role = ROLE
        out.append(r)
    return out


def volume() -> pb.Resource:
    (disk,) = reserved("disk:64")
    disk.disk.persistence.id = "vol-1"
    disk.disk.volume.container_path = "data"
    disk.disk.volume.mode = pb.Volume.RW
    return disk


class Stateful(corral.Scheduler):
    """Phase 1: reserve + create + launch the writer. Phase 2 (after the writer is
    killed): launch the reader on the offer that carries the volume. Phase 3: destroy."""

    def __init__(self) -> None:
        self.phase = 1
        self.states: dict[str, list[str]] = {}
        self.cond = threading.Condition()
        self.errors: list[str] = []

    def task(self, name: str, command: str, offer: pb.Offer) -> pb.TaskInfo:
        task = corral.command_task(name, command, offer.agent_id, "cpus:0.1;mem:32", task_id=name)
        del task.resources[:]
        task.resources.extend(reserved("cpus:0.1;mem:32") + [volume()])
        return task

    def resource_offers(self, driver, offers):
        for offer in offers:
            available = Resources.from_protos(offer.resources)
            has_volume = Resources.from_protos([volume()]) <= available
            if self.phase == 1:
                self.phase = 0
                ops = [Op(type=Op.RESERVE, reserve=Op.Reserve(resources=reserved("cpus:0.1;mem:32;disk:64"))),
                       Op(type=Op.CREATE, create=Op.Create(volumes=[volume()])),
                       Op(type=Op.LAUNCH, launch=Op.Launch(task_infos=[
                           self.task("writer", "echo precious-data > data/file && sleep 600", offer)]))]
                driver.accept_offers([offer.id], ops, corral.Filters(refuse_seconds=0))
            elif self.phase == 2 and has_volume:
                self.phase = 0
                driver.launch_tasks(offer.id, [self.task("reader", "grep -q precious-data data/file", offer)],
                                    corral.Filters(refuse_seconds=0))
            elif self.phase == 3 and has_volume:
                self.phase = 0
                driver.accept_offers([offer.id], [Op(type=Op.DESTROY, destroy=Op.Destroy(volumes=[volume()]))],
                                     corral.Filters(refuse_seconds=0))
            else:
                driver.decline_offer(offer.id, corral.Filters(refuse_seconds=0.2))

    def status_update(self, driver, status):
        with self.cond:
            self.states.setdefault(status.task_id.value, []).append(corral.state_name(status.state))
            self.cond.notify_all()

    def error(self, driver, message):
        with self.cond:
            self.errors.append(message)
            self.cond.notify_all()

    def wait(self, predicate, timeout=30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


def test_volume_outlives_its_task_and_is_offered_back_with_its_data(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, agents=1, resources="cpus:2;mem:1024;disk:512") as cluster:
        scheduler = Stateful()
        info = corral.FrameworkInfo(name="stateful", user="", role=ROLE)
        driver = corral.SchedulerDriver(scheduler, info, cluster.master_address)
        driver.start()
        try:
            assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states.get("writer", []))
            data = cluster.agents[0].work_dir / "volumes" / "roles" / ROLE / "vol-1" / "file"
            wait_for(data.exists, 10, "the writer's file on the volume")
            driver.kill_task(corral.TaskID(value="writer"))
            assert scheduler.wait(lambda: scheduler.states["writer"][-1:] == ["TASK_KILLED"])
            scheduler.phase = 2
            driver.revive_offers()
            assert scheduler.wait(lambda: scheduler.states.get("reader", [])[-1:] == ["TASK_FINISHED"]), \
                (scheduler.states, scheduler.errors)
            agents = cluster.state()["agents"]
            assert agents[0]["resources"]["disk"] == 512  # the volume is still part of the agent
            scheduler.phase = 3
            driver.revive_offers()
            wait_for(lambda: not data.parent.exists(), 15, "the destroyed volume's directory to go")
            assert not scheduler.errors
        finally:
            driver.stop()
