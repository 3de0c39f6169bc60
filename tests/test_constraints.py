"""Placement constraints over agent attributes."""
from __future__ import annotations

import pytest

from corral.constraints import Constraint, ConstraintError, Operator, Placement, allows, offer_attributes
from corral.protos import corral_pb2 as pb
from corral.resources import parse_attributes


def offer(host: str, attributes: str) -> pb.Offer:
    return pb.Offer(id=pb.OfferID(value="o"), framework_id=pb.FrameworkID(value="f"),
                    agent_id=pb.AgentID(value=host), hostname=host, attributes=parse_attributes(attributes))


def place(constraints, offers, count):
    """Greedy placement: each task on the first offer the constraints allow."""
    placed, hosts = Placement(), []
    for _ in range(count):
        for o in offers:
            if allows(constraints, o, placed):
                placed.add(offer_attributes(o))
                hosts.append(o.hostname)
                break
    return hosts


AGENTS = [offer("a1", "rack:r1;zone:us-east"), offer("a2", "rack:r1;zone:us-west"),
          offer("a3", "rack:r2;zone:eu-west"), offer("a4", "rack:r3;zone:us-east")]


def test_unique_hostname_puts_one_task_per_host() -> None:
    assert place([Constraint.parse(["hostname", "UNIQUE"])], AGENTS, 6) == ["a1", "a2", "a3", "a4"]


def test_group_by_spreads_evenly_over_the_values() -> None:
    hosts = place([Constraint.parse(["rack", "GROUP_BY", "3"])], AGENTS, 6)
    racks = {"a1": "r1", "a2": "r1", "a3": "r2", "a4": "r3"}
    counts = {r: [racks[h] for h in hosts].count(r) for r in ("r1", "r2", "r3")}
    assert counts == {"r1": 2, "r2": 2, "r3": 2}


def test_max_per_caps_each_value() -> None:
    hosts = place([Constraint.parse(["rack", "MAX_PER", "1"])], AGENTS, 5)
    assert hosts == ["a1", "a3", "a4"]


def test_equals_like_unlike() -> None:
    assert place([Constraint.parse(["zone", "EQUALS", "us-east"])], AGENTS, 1) == ["a1"]
    assert place([Constraint.parse(["zone", "LIKE", "eu-.*"])], AGENTS, 1) == ["a3"]
    assert place([Constraint.parse(["zone", "UNLIKE", "us-.*"])], AGENTS, 1) == ["a3"]
    # an attribute the agent lacks never matches EQUALS/LIKE, always UNLIKE
    assert not Constraint.parse(["gpu", "LIKE", ".*"]).allows({}, Placement())
    assert Constraint.parse(["gpu", "UNLIKE", ".*"]).allows({}, Placement())


@pytest.mark.parametrize(("spec", "named"), [
    (["rack", "NEAR"], "NEAR"), (["rack", "MAX_PER"], "needs a value"), (["rack", "MAX_PER", "x"], "'x'"),
    (["zone", "LIKE", "(["], "(["), (["", "UNIQUE"], "expected"),
])
def test_bad_constraints_name_the_bad_part(spec, named) -> None:
    with pytest.raises(ConstraintError, match=None) as info:
        Constraint.parse(spec)
    assert named in str(info.value)


def test_operators_are_an_enum() -> None:
    assert Constraint.parse(["hostname", "unique"]).operator is Operator.UNIQUE
