"""Tests for corral.engines.master.allocator: hierarchical DRF, weights, quota limits, reservations,
filters, suppression, (de)activation, agent removal, minimum allocatable, role names.
Time is passed in; nothing sleeps."""

from __future__ import annotations

import pytest

from corral.engines.master.allocator import (
    Allocation,
    Allocator,
    AllocatorConfig,
    AllocatorError,
    RoleError,
    validate_role,
)
from corral.resources import Resources

R = Resources.parse
SMALL = "cpus:1;mem:1024"


def cluster(agents: int, spec: str = SMALL, **config: object) -> Allocator:
    allocator = Allocator(AllocatorConfig(**config))  # type: ignore[arg-type]
    for index in range(agents):
        allocator.add_agent(f"agent{index:03d}", R(spec))
    return allocator


def cpus_of(allocator: Allocator, framework_id: str, role: str | None = None) -> float:
    return sum(held.cpus for held in allocator.allocated(framework_id, role).values())


def by_framework(allocations: list[Allocation]) -> dict[str, list[Allocation]]:
    out: dict[str, list[Allocation]] = {}
    for allocation in allocations:
        out.setdefault(allocation.framework_id, []).append(allocation)
    return out


def role_view(allocator: Allocator, role: str) -> dict[str, object]:
    roles = allocator.snapshot()["roles"]
    assert isinstance(roles, list)
    return next(view for view in roles if view["name"] == role)


# ------------------------------------------------------------------ DRF


def test_drf_paper_example() -> None:
    """Ghodsi et al., NSDI 2011, section 4: 9 CPUs and 18 GB; A's tasks need <1 CPU, 4 GB>,
    B's <3 CPUs, 1 GB>. Each framework launches one task per offer when it fits and
    declines the rest; DRF ends with A running 3 tasks and B 2 (both at share 2/3)."""
    allocator = cluster(1, "cpus:9;mem:18432")
    demand = {"A": R("cpus:1;mem:4096"), "B": R("cpus:3;mem:1024")}
    tasks = {"A": 0, "B": 0}
    order = []
    for name in demand:
        allocator.add_framework(name, ["*"])
    now = 0.0
    for _ in range(20):
        allocations = allocator.allocate(now)
        if not allocations:
            break
        for offer in allocations:
            task = demand[offer.framework_id]
            if offer.resources.contains(task):
                tasks[offer.framework_id] += 1
                order.append(offer.framework_id)
                allocator.recover(offer.framework_id, offer.agent_id, offer.resources - task, None, now)
            else:  # nothing fits: decline with a long filter, as a real framework would
                allocator.recover(offer.framework_id, offer.agent_id, offer.resources, 3600.0, now)
        now += 1.0
    assert tasks == {"A": 3, "B": 2}
    # the paper's sequence: A first (tie broken by name), then whoever is lowest
    assert order == ["A", "B", "A", "B", "A"]
    assert role_view(allocator, "*")["allocated"] == {"cpus": 9.0, "mem": 14336.0}


def test_lowest_dominant_share_is_served_first() -> None:
    allocator = cluster(4)
    allocator.add_framework("big", ["r"])
    allocator.add_framework("small", ["r"])
    first = allocator.allocate(0.0)
    # one agent at a time goes to the framework with the lowest share: they alternate
    assert [a.framework_id for a in first] == ["big", "small", "big", "small"]
    allocator.recover("small", "agent001", R(SMALL))
    allocator.recover("small", "agent003", R(SMALL))
    allocator.recover("big", "agent000", R(SMALL))
    # big holds 1 agent, small none: small gets the first freed agent, then they tie
    # (1 each) and big wins the tie by id
    second = allocator.allocate(1.0)
    assert [(a.framework_id, a.agent_id) for a in second] == [
        ("small", "agent000"), ("big", "agent001"), ("small", "agent003")]


def test_weighted_shares() -> None:
    allocator = cluster(30)
    allocator.set_weight("heavy", 2)
    allocator.add_framework("h", ["heavy"])
    allocator.add_framework("l", ["light"])
    allocator.allocate(0.0)
    assert cpus_of(allocator, "h") == 20
    assert cpus_of(allocator, "l") == 10
    heavy, light = role_view(allocator, "heavy"), role_view(allocator, "light")
    assert heavy["share"] == pytest.approx(2 * light["share"])  # type: ignore[operator]
    assert heavy["weighted_share"] == pytest.approx(light["weighted_share"])


def test_weight_must_be_positive() -> None:
    allocator = Allocator()
    for weight in (0, -1, float("nan"), float("inf")):
        with pytest.raises(AllocatorError, match="weight"):
            allocator.set_weight("r", weight)


def test_framework_with_several_roles_gets_one_offer_per_role() -> None:
    allocator = cluster(1, "cpus:2;mem:2048;cpus(a):1;mem(a):1024;cpus(b):1;mem(b):1024")
    allocator.add_framework("f", ["a", "b"])
    allocations = allocator.allocate(0.0)
    # stage 1: each role its reservation; stage 2: the tie (equal shares) goes to "a" by name
    assert {a.role: a.resources for a in allocations} == {
        "a": R("cpus:2;mem:2048;cpus(a):1;mem(a):1024"),
        "b": R("cpus(b):1;mem(b):1024"),
    }
    assert len(allocations) == 2


# ------------------------------------------------------------------ hierarchy


def test_hierarchical_roles_share_their_parents_portion() -> None:
    """a/b and a/c split a's half; flat DRF would give each of the three roles a third."""
    allocator = cluster(32)
    allocator.add_framework("fb", ["a/b"])
    allocator.add_framework("fc", ["a/c"])
    allocator.add_framework("fd", ["d"])
    allocator.allocate(0.0)
    assert cpus_of(allocator, "fd") == 16
    assert cpus_of(allocator, "fb") == 8
    assert cpus_of(allocator, "fc") == 8
    assert role_view(allocator, "a")["allocated"] == {"cpus": 16.0, "mem": 16384.0}


def test_framework_in_parent_role_competes_with_sub_roles() -> None:
    allocator = cluster(30)
    allocator.add_framework("fa", ["a"])
    allocator.add_framework("fb", ["a/b"])
    allocator.add_framework("fd", ["d"])
    allocator.allocate(0.0)
    assert cpus_of(allocator, "fd") == 15
    assert {cpus_of(allocator, "fa"), cpus_of(allocator, "fb")} <= {7, 8}


def test_weight_of_a_sub_role_applies_among_its_siblings() -> None:
    allocator = cluster(36)
    allocator.set_weight("a/b", 2)
    allocator.add_framework("fb", ["a/b"])
    allocator.add_framework("fc", ["a/c"])
    allocator.add_framework("fd", ["d"])
    allocator.allocate(0.0)
    assert cpus_of(allocator, "fd") == 18
    assert cpus_of(allocator, "fb") == 12
    assert cpus_of(allocator, "fc") == 6


# ------------------------------------------------------------------ quota


def test_quota_caps_a_role() -> None:
    allocator = cluster(10)
    allocator.set_quota("q", R("cpus:3.5"))
    allocator.add_framework("fq", ["q"])
    allocator.add_framework("fo", ["other"])
    allocator.allocate(0.0)
    assert cpus_of(allocator, "fq") == 3.5  # the fourth agent's offer is shrunk
    assert cpus_of(allocator, "fo") == 6.5
    # at its limit, the role gets nothing more from an agent with cpus (no memory alone)
    assert sum(r.mem for r in allocator.allocated("fq").values()) == 4096
    assert role_view(allocator, "q")["quota"] == {"cpus": 3.5}
    # what is freed goes to the role only up to its quota again
    held = allocator.allocated("fq")
    agent_id = next(agent for agent, resources in held.items() if resources == R(SMALL))
    allocator.recover("fq", agent_id, R(SMALL))
    assert cpus_of(allocator, "fq") == 2.5
    (offer,) = allocator.allocate(1.0)
    assert offer.resources == R(SMALL)
    assert cpus_of(allocator, "fq") == 3.5


def test_parent_quota_caps_its_sub_roles_together() -> None:
    allocator = cluster(10)
    allocator.set_quota("a", R("cpus:4;mem:409600"))  # mem: more than the cluster has
    allocator.add_framework("fb", ["a/b"])
    allocator.add_framework("fc", ["a/c"])
    allocator.allocate(0.0)
    assert cpus_of(allocator, "fb") + cpus_of(allocator, "fc") == 4
    assert role_view(allocator, "a")["allocated"]["cpus"] == 4.0  # type: ignore[index]


def test_quota_must_be_scalars() -> None:
    with pytest.raises(AllocatorError, match="only scalars"):
        Allocator().set_quota("r", R("cpus:1;ports:[1-2]"))


def test_quota_removed_lifts_the_cap() -> None:
    allocator = cluster(4)
    allocator.set_quota("q", R("cpus:1"))
    allocator.add_framework("f", ["q"])
    allocator.allocate(0.0)
    assert cpus_of(allocator, "f") == 1
    allocator.set_quota("q", None)
    allocator.allocate(1.0)
    assert cpus_of(allocator, "f") == 4


# ------------------------------------------------------------------ reservations


def test_reserved_resources_only_go_to_their_role() -> None:
    allocator = cluster(1, "cpus:2;mem:2048;cpus(r1):4;mem(r1):4096")
    allocator.add_framework("f2", ["r2"])
    allocations = allocator.allocate(0.0)
    assert [str(a.resources) for a in allocations] == ["cpus:2;mem:2048"]
    assert allocator.available("agent000") == R("cpus(r1):4;mem(r1):4096")
    allocator.add_framework("f1", ["r1"])
    allocations = allocator.allocate(1.0)
    assert [(a.framework_id, str(a.resources)) for a in allocations] == [
        ("f1", "cpus(r1):4;mem(r1):4096")]


def test_reserved_resources_go_to_their_role_first() -> None:
    """r1's framework already has a larger share than r2's, yet its reservation is
    offered to it, together with nothing unreserved (r2 is lower and gets that)."""
    allocator = cluster(1, "cpus:2;mem:2048;cpus(r1):4;mem(r1):4096")
    allocator.add_agent("extra", R("cpus:4;mem:4096"))
    allocator.add_framework("f1", ["r1"])
    allocator.add_framework("f2", ["r2"])
    allocations = allocator.allocate(0.0)
    got = {(a.framework_id, a.agent_id): str(a.resources) for a in allocations}
    assert got[("f1", "agent000")] == "cpus(r1):4;mem(r1):4096"
    assert got[("f2", "agent000")] == "cpus:2;mem:2048"
    assert got[("f2", "extra")] == "cpus:4;mem:4096"


def test_reservation_to_a_parent_role_serves_its_sub_roles() -> None:
    allocator = cluster(1, "cpus(a):4;mem(a):4096")
    allocator.add_framework("fx", ["x"])
    allocator.add_framework("fab", ["a/b"])
    allocations = allocator.allocate(0.0)
    assert [(a.framework_id, a.role) for a in allocations] == [("fab", "a/b")]


def test_update_allocation_converts_held_resources() -> None:
    allocator = cluster(1, "cpus:4;mem:4096")
    allocator.add_framework("f", ["r"])
    (offer,) = allocator.allocate(0.0)
    allocator.update_allocation("f", "agent000", R("cpus:4"), R("cpus(r):4"))
    assert allocator.allocated("f")["agent000"] == R("cpus(r):4;mem:4096")
    allocator.recover("f", "agent000", R("cpus(r):4;mem:4096"))
    assert allocator.available("agent000") == R("cpus(r):4;mem:4096")
    (again,) = allocator.allocate(1.0)
    assert again.resources == R("cpus(r):4;mem:4096")
    with pytest.raises(AllocatorError, match="changes quantities"):
        allocator.update_allocation("f", "agent000", R("cpus(r):4"), R("cpus:3"))


def test_update_agent_changes_its_total() -> None:
    allocator = cluster(1, "cpus:4;mem:4096")
    allocator.add_framework("f", ["r1"])
    allocator.update_agent("agent000", R("cpus(r2):4;mem:4096"))
    allocations = allocator.allocate(0.0)
    assert [str(a.resources) for a in allocations] == ["mem:4096"]
    with pytest.raises(AllocatorError, match="lacks what is allocated"):
        allocator.update_agent("agent000", R("cpus:4"))


# ------------------------------------------------------------------ filters


def test_decline_filter_holds_until_expiry() -> None:
    allocator = cluster(1)
    allocator.add_framework("f", ["r"])
    (offer,) = allocator.allocate(0.0)
    allocator.recover("f", offer.agent_id, offer.resources, refuse_seconds=5.0, now=0.0)
    assert allocator.allocate(1.0) == []
    assert allocator.allocate(4.999) == []
    (again,) = allocator.allocate(5.0)
    assert again.resources == R(SMALL)


def test_filtered_resources_go_to_the_next_framework() -> None:
    allocator = cluster(1)
    allocator.add_framework("a", ["r"])
    allocator.add_framework("b", ["r"])
    (offer,) = allocator.allocate(0.0)
    assert offer.framework_id == "a"
    allocator.recover("a", offer.agent_id, offer.resources, refuse_seconds=5.0, now=0.0)
    assert [a.framework_id for a in allocator.allocate(1.0)] == ["b"]


def test_filter_only_covers_the_refused_resources() -> None:
    """A filter on <1 cpu> does not hold back an offer that holds more than that."""
    allocator = cluster(1, "cpus:2;mem:2048")
    allocator.add_framework("f", ["r"])
    (offer,) = allocator.allocate(0.0)
    allocator.recover("f", offer.agent_id, R("cpus:1;mem:1024"), refuse_seconds=60.0, now=0.0)
    assert allocator.allocate(1.0) == []  # cpus:1;mem:1024 is available: filtered
    allocator.recover("f", offer.agent_id, R("cpus:1;mem:1024"))
    (again,) = allocator.allocate(2.0)  # cpus:2;mem:2048 is not contained in the filter
    assert again.resources == R("cpus:2;mem:2048")


def test_no_filter_without_refuse_seconds() -> None:
    allocator = cluster(1)
    allocator.add_framework("f", ["r"])
    (offer,) = allocator.allocate(0.0)
    allocator.recover("f", offer.agent_id, offer.resources, refuse_seconds=0.0, now=0.0)
    assert len(allocator.allocate(0.0)) == 1


def test_revive_clears_filters() -> None:
    allocator = cluster(1)
    allocator.add_framework("f", ["r"])
    (offer,) = allocator.allocate(0.0)
    allocator.recover("f", offer.agent_id, offer.resources, refuse_seconds=60.0, now=0.0)
    assert allocator.allocate(1.0) == []
    allocator.revive("f")
    assert len(allocator.allocate(2.0)) == 1


# ------------------------------------------------------------------ suppress, activation


def test_suppress_stops_offers_and_revive_resumes() -> None:
    allocator = cluster(2)
    allocator.add_framework("f", ["r"])
    allocator.suppress("f")
    assert allocator.allocate(0.0) == []
    allocator.revive("f")
    assert len(allocator.allocate(1.0)) == 2


def test_suppress_one_role_of_several() -> None:
    allocator = cluster(2)
    allocator.add_framework("f", ["r1", "r2"])
    allocator.suppress("f", ["r1"])
    assert {a.role for a in allocator.allocate(0.0)} == {"r2"}
    with pytest.raises(AllocatorError, match="not subscribed"):
        allocator.suppress("f", ["r3"])


def test_deactivated_framework_gets_nothing() -> None:
    allocator = cluster(2)
    allocator.add_framework("f", ["r"])
    allocator.add_framework("g", ["r"])
    allocator.deactivate_framework("f")
    assert {a.framework_id for a in allocator.allocate(0.0)} == {"g"}
    allocator.activate_framework("f")
    allocator.recover("g", "agent000", R(SMALL))
    assert [a.framework_id for a in allocator.allocate(1.0)] == ["f"]


def test_deactivated_agent_offers_nothing() -> None:
    allocator = cluster(2)
    allocator.add_framework("f", ["r"])
    allocator.deactivate_agent("agent000")
    assert [a.agent_id for a in allocator.allocate(0.0)] == ["agent001"]
    allocator.activate_agent("agent000")
    assert [a.agent_id for a in allocator.allocate(1.0)] == ["agent000"]


def test_removed_framework_returns_its_resources() -> None:
    allocator = cluster(2)
    allocator.add_framework("f", ["r"])
    allocator.allocate(0.0)
    allocator.remove_framework("f")
    assert allocator.available("agent000") == R(SMALL)
    assert [view["name"] for view in allocator.snapshot()["roles"]] == []  # type: ignore[union-attr]
    allocator.add_framework("g", ["s"])
    assert len(allocator.allocate(1.0)) == 2


# ------------------------------------------------------------------ agents


def test_removed_agent_takes_its_resources_along() -> None:
    allocator = cluster(2)
    allocator.add_framework("f", ["r"])
    allocator.add_framework("g", ["s"])
    allocator.allocate(0.0)
    assert allocator.snapshot()["total"] == {"cpus": 2.0, "mem": 2048.0}
    allocator.remove_agent("agent000")
    assert allocator.snapshot()["total"] == {"cpus": 1.0, "mem": 1024.0}
    assert cpus_of(allocator, "f") + cpus_of(allocator, "g") == 1
    # the roles' allocations (hence their shares) lost the agent's part too
    allocated = [role_view(allocator, role)["allocated"] for role in ("r", "s")]
    assert sorted(allocated, key=len) == [{}, {"cpus": 1.0, "mem": 1024.0}]  # type: ignore[arg-type]
    # recovering resources of the removed agent is a no-op
    allocator.recover("f", "agent000", R(SMALL))
    with pytest.raises(AllocatorError, match="unknown agent"):
        allocator.available("agent000")
    holder = "f" if cpus_of(allocator, "f") else "g"
    allocator.recover(holder, "agent001", R(SMALL))
    assert [a.agent_id for a in allocator.allocate(1.0)] == ["agent001"]


def test_added_agent_changes_shares() -> None:
    """Shares are over the cluster total: a new agent with a new resource kind counts."""
    allocator = cluster(1, "cpus:4;mem:4096")
    allocator.add_framework("f", ["r"])
    allocator.allocate(0.0)
    assert role_view(allocator, "r")["share"] == 1.0
    allocator.add_agent("gpu", R("cpus:4;mem:4096;gpus:2"))
    assert role_view(allocator, "r")["share"] == 0.5


def test_minimum_allocatable() -> None:
    allocator = cluster(1, "cpus:0.005;mem:16;disk:100")
    allocator.add_agent("enough_mem", R("cpus:0.005;mem:32"))
    allocator.add_agent("enough_cpu", R("cpus:0.01;mem:1"))
    allocator.add_framework("f", ["r"])
    assert sorted(a.agent_id for a in allocator.allocate(0.0)) == ["enough_cpu", "enough_mem"]
    strict = cluster(1, "cpus:0.5;mem:64", min_allocatable=({"cpus": 1.0, "mem": 64.0},))
    strict.add_framework("f", ["r"])
    assert strict.allocate(0.0) == []


def test_duplicates_and_unknowns_are_errors() -> None:
    allocator = cluster(1)
    allocator.add_framework("f", ["r"])
    with pytest.raises(AllocatorError, match="already added"):
        allocator.add_agent("agent000", R(SMALL))
    with pytest.raises(AllocatorError, match="already added"):
        allocator.add_framework("f", ["r"])
    with pytest.raises(AllocatorError, match="unknown framework 'nope'"):
        allocator.suppress("nope")
    with pytest.raises(AllocatorError, match="does not hold"):
        allocator.recover("f", "agent000", R(SMALL))
    with pytest.raises(AllocatorError, match="no role"):
        allocator.add_framework("g", [])


# ------------------------------------------------------------------ roles


@pytest.mark.parametrize(
    "role",
    ["", "/a", "a/", "a//b", "a/./b", "a/..", ".", "..", "a b", "a\tb", "a*", "*/a", "a/*",
     "-a", "a:b", "a(b)"],
)
def test_bad_role_names_raise_role_error_naming_the_role(role: str) -> None:
    with pytest.raises(RoleError) as raised:
        validate_role(role)
    assert repr(role) in str(raised.value)
    assert isinstance(raised.value, ValueError)
    with pytest.raises(RoleError):
        Allocator().add_framework("f", [role])
    with pytest.raises(RoleError):
        Allocator().set_weight(role, 2)


@pytest.mark.parametrize("role", ["*", "a", "a/b", "a/b/c", "web-1", "a.b", "a_b/c.d"])
def test_good_role_names(role: str) -> None:
    assert validate_role(role) == role


def test_snapshot_is_json() -> None:
    import json

    allocator = cluster(2)
    allocator.set_quota("a", R("cpus:1"))
    allocator.add_framework("f", ["a/b"])
    allocator.allocate(0.0)
    snapshot = json.loads(json.dumps(allocator.snapshot()))
    assert [view["name"] for view in snapshot["roles"]] == ["a", "a/b"]
    assert snapshot["roles"][0]["quota"] == {"cpus": 1.0}
    assert snapshot["roles"][1]["frameworks"] == ["f"]
    assert snapshot["roles"][1]["allocated"] == {"cpus": 1.0, "mem": 1024.0}


def test_cap_scalars_cuts_unreserved_first() -> None:
    resources = R("cpus:2;cpus(r):2;mem:100")
    assert resources.cap_scalars({"cpus": 3}) == R("cpus:1;cpus(r):2;mem:100")
    assert resources.cap_scalars({"cpus": 1}) == R("cpus(r):1;mem:100")
    assert resources.cap_scalars({"cpus": -1, "mem": 50}) == R("mem:50")


@pytest.mark.parametrize("seed", range(5))
def test_invariants_under_random_operations(seed: int) -> None:
    """Whatever happens, every agent's available part plus what frameworks hold on it is
    its total, no role exceeds its quota, and each role's allocation is what its (and its
    sub-roles') frameworks hold."""
    import random

    rng = random.Random(seed)
    specs = ["cpus:4;mem:4096;ports:[1-100]", "cpus:2;mem:2048;cpus(a):2;mem(a/b):512",
             "cpus:0.5;mem:16", "cpus(c):1;mem:1024"]
    allocator = Allocator()
    totals = {}
    for index in range(12):
        totals[f"agent{index}"] = R(specs[index % len(specs)])
        allocator.add_agent(f"agent{index}", totals[f"agent{index}"])
    allocator.set_quota("a", R("cpus:5"))
    allocator.set_quota("c", R("cpus:3.5;mem:3000"))
    allocator.set_weight("a/b", 3)
    roles = {"f0": ["a"], "f1": ["a/b"], "f2": ["a/b", "c"], "f3": ["c"], "f4": ["*"]}
    for framework_id, framework_roles in roles.items():
        allocator.add_framework(framework_id, framework_roles)
    now = 0.0
    for _ in range(60):
        now += rng.choice([0.5, 1.0, 3.0])
        for offer in allocator.allocate(now):
            if rng.random() < 0.5:
                allocator.recover(offer.framework_id, offer.agent_id, offer.resources,
                                  rng.choice([None, 2.0]), now, role=offer.role)
        framework_id = rng.choice(list(roles))
        action = rng.randrange(4)
        if action == 0:
            allocator.suppress(framework_id)
        elif action == 1:
            allocator.revive(framework_id)
        elif action == 2:
            for role in roles[framework_id]:
                for agent_id, held in allocator.allocated(framework_id, role).items():
                    allocator.recover(framework_id, agent_id, held, None, now, role=role)
        for agent_id, total in totals.items():
            held = allocator.available(agent_id)
            for other in roles:
                held = held + allocator.allocated(other).get(agent_id, Resources())
            assert held == total
        views = {view["name"]: view for view in allocator.snapshot()["roles"]}  # type: ignore[union-attr,index]
        assert views["a"]["allocated"].get("cpus", 0) <= 5
        assert views["c"]["allocated"].get("cpus", 0) <= 3.5
        assert views["c"]["allocated"].get("mem", 0) <= 3000
        for name, view in views.items():
            expected: dict[str, float] = {}
            for framework_id, framework_roles in roles.items():
                for role in framework_roles:
                    if role == name or role.startswith(name + "/"):
                        for resources in allocator.allocated(framework_id, role).values():
                            for kind in ("cpus", "mem"):
                                expected[kind] = expected.get(kind, 0) + resources.scalar(kind)
            assert view["allocated"] == {k: v for k, v in sorted(expected.items()) if v}


def test_a_reservation_of_disk_alone_is_offered_to_its_role():
    """A persistent volume's disk is not allocatable on its own; the role's whole usable
    set on the agent is what counts (as in Mesos)."""
    from corral.engines.master.allocator import Allocator
    from corral.resources import Resources

    reserved_disk = Resources.from_protos(Resources.parse("disk:100", default_role="db").to_protos())
    allocator = Allocator()
    allocator.add_agent("a1", Resources.parse("cpus:2;mem:1024") + reserved_disk)
    allocator.add_framework("f1", ["db"])
    (allocation,) = allocator.allocate(0.0)
    assert allocation.resources.reserved("db") == reserved_disk
    assert allocation.resources.cpus == 2
