"""RESERVE, UNRESERVE, CREATE and DESTROY through accept, in the master engine: the
converted resources are offered back to the role, volumes outlive their tasks, and bad
operations are refused with a clear error while the rest of the accept goes on."""
from __future__ import annotations

from corral.protos import corral_pb2 as pb
from corral.resources import Resources

from engine_helpers import bodies, command_task, feed, new_master, offers, register_agent, sent, status_update, subscribe

S1, A1 = "tcp://sched1", "tcp://agent1"
Op = pb.Offer.Operation
DYNAMIC = pb.Resource.ReservationInfo.DYNAMIC


def reserved(text: str, role: str) -> list[pb.Resource]:
    out = []
    for r in Resources.parse(text).to_protos():
        r.reservations.add(type=DYNAMIC, role=role)
        r.role = role
        out.append(r)
    return out


def volume(size: float, role: str, pid: str, path: str = "data") -> pb.Resource:
    (disk,) = reserved(f"disk:{size:g}", role)
    disk.disk.persistence.id = pid
    disk.disk.volume.container_path = path
    disk.disk.volume.mode = pb.Volume.RW
    return disk


def accept_ops(m, fid, offer, *ops, now):
    msg = pb.Accept(framework_id=pb.FrameworkID(value=fid), offer_ids=[offer.id], operations=list(ops))
    msg.filters.refuse_seconds = 0
    feed(m, S1, msg, now)


def setup(role="db"):
    m = new_master()
    aid = register_agent(m, A1, res="cpus:4;mem:4096;disk:1000")
    fid = subscribe(m, S1, role=role)
    (offer,) = offers(m, 1.0, to=S1)
    return m, aid, fid, offer


def test_reserve_then_create_then_launch_on_the_volume_and_get_it_back():
    m, aid, fid, offer = setup()
    accept_ops(m, fid, offer,
               Op(type=Op.RESERVE, reserve=Op.Reserve(resources=reserved("cpus:1;mem:512;disk:200", "db"))),
               Op(type=Op.CREATE, create=Op.Create(volumes=[volume(200, "db", "vol-1")])), now=2.0)
    out = sent(m)
    (checkpoint,) = [b for to, b in out if isinstance(b, pb.CheckpointResources)]
    total = Resources.from_protos(checkpoint.resources)
    assert total.reserved("db").cpus == 1 and total.unreserved().disk == 800
    (again,) = offers(m, 3.0, to=S1)
    offered = Resources.from_protos(again.resources)
    assert Resources.from_protos([volume(200, "db", "vol-1")]) <= offered
    # launch a task on the volume
    task = command_task("writer", aid, "cpus:1;mem:512")
    task.resources.append(volume(200, "db", "vol-1"))
    feed(m, S1, pb.Accept(framework_id=pb.FrameworkID(value=fid), offer_ids=[again.id],
                          operations=[Op(type=Op.LAUNCH, launch=Op.Launch(task_infos=[task]))]), 4.0)
    assert [b for _, b in sent(m) if isinstance(b, pb.RunTask)]
    # while it runs the volume is not offered; destroying it is refused as in use
    assert all(not Resources.from_protos(o.resources).disk or
               not any(r.HasField("disk") for r in o.resources) for o in offers(m, 6.0, to=S1))
    # the task ends: the volume (with its reservation) is offered back to the role
    feed(m, A1, status_update(fid, aid, "writer", pb.TASK_FINISHED, b"u" * 16), 7.0)
    back = offers(m, 9.0, to=S1)
    assert any(Resources.from_protos([volume(200, "db", "vol-1")]) <= Resources.from_protos(o.resources) for o in back)


def test_reserving_what_was_not_offered_is_refused_and_nothing_changes():
    m, aid, fid, offer = setup()
    accept_ops(m, fid, offer, Op(type=Op.RESERVE, reserve=Op.Reserve(resources=reserved("cpus:64", "db"))), now=2.0)
    (error,) = bodies(m, pb.Error, to=S1)
    assert "RESERVE rejected" in error.message and "cpus:64" in error.message
    assert not m.agents[aid].total.reserved()


def test_reserving_for_another_role_is_refused():
    m, aid, fid, offer = setup()
    accept_ops(m, fid, offer, Op(type=Op.RESERVE, reserve=Op.Reserve(resources=reserved("cpus:1", "web"))), now=2.0)
    (error,) = bodies(m, pb.Error, to=S1)
    assert "'db'" in error.message


def test_volume_on_unreserved_disk_and_duplicate_ids_are_refused():
    m, aid, fid, offer = setup()
    bad = volume(100, "db", "v")
    del bad.reservations[:]
    bad.ClearField("role")
    accept_ops(m, fid, offer, Op(type=Op.CREATE, create=Op.Create(volumes=[bad])), now=2.0)
    (error,) = bodies(m, pb.Error, to=S1)
    assert "CREATE rejected" in error.message and "reserved" in error.message


def test_destroy_and_unreserve_give_the_disk_back_unreserved():
    m, aid, fid, offer = setup()
    accept_ops(m, fid, offer, Op(type=Op.RESERVE, reserve=Op.Reserve(resources=reserved("disk:100", "db"))),
               Op(type=Op.CREATE, create=Op.Create(volumes=[volume(100, "db", "v1")])), now=2.0)
    (again,) = offers(m, 3.0, to=S1)
    accept_ops(m, fid, again, Op(type=Op.DESTROY, destroy=Op.Destroy(volumes=[volume(100, "db", "v1")])),
               Op(type=Op.UNRESERVE, unreserve=Op.Unreserve(resources=reserved("disk:100", "db"))), now=4.0)
    assert not bodies(m, pb.Error, to=S1)
    assert m.agents[aid].total == Resources.parse("cpus:4;mem:4096;disk:1000")


def test_the_snapshot_lists_each_agents_reservations_and_volumes_by_role():
    m, aid, fid, offer = setup()
    assert m.snapshot()["agents"][0]["reserved_resources_full"] == {}
    accept_ops(m, fid, offer,
               Op(type=Op.RESERVE, reserve=Op.Reserve(resources=reserved("cpus:1;disk:200", "db"))),
               Op(type=Op.CREATE, create=Op.Create(volumes=[volume(200, "db", "vol-1")])), now=2.0)
    (agent,) = m.snapshot()["agents"]
    full = agent["reserved_resources_full"]
    assert list(full) == ["db"]
    by_name = {r["name"]: r for r in full["db"]}
    assert by_name["cpus"]["scalar"]["value"] == 1
    assert by_name["disk"]["disk"]["persistence"]["id"] == "vol-1"
    assert by_name["disk"]["reservations"][0]["role"] == "db"
