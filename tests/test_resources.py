"""Tests for corral.resources: parsing, arithmetic, conversions, attributes, detection."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.protos import corral_pb2
from corral.resources import (
    UNRESERVED,
    ReservationType,
    ResourceError,
    Resources,
    ValueKind,
    attributes_to_dict,
    detect_resources,
    leave_for_system,
    parse_attributes,
    ranges,
    scalar,
    set_items,
)

P = Resources.parse


def dynamic(name: str, value: float, role: str, principal: str) -> corral_pb2.Resource:
    resource = scalar(name, value)
    resource.reservations.add(
        type=corral_pb2.Resource.ReservationInfo.DYNAMIC, role=role, principal=principal
    )
    return resource


def volume(volume_id: str, size: float, role: str = "db") -> corral_pb2.Resource:
    resource = scalar("disk", size, role)
    resource.disk.persistence.id = volume_id
    resource.disk.volume.container_path = "data"
    return resource


# ------------------------------------------------------------------ parsing


def test_parse_every_value_kind_with_roles() -> None:
    r = P(" cpus:4 ; mem(web) : 1024.5;ports:[31000-32000, 33000-33100];gpus(web):{g1, g0} ")
    assert r.scalar("cpus") == 4.0
    assert r.reserved("web").mem == 1024.5
    assert r.unreserved().mem == 0.0
    assert r.ports == [(31000, 32000), (33000, 33100)]
    assert r.reserved("web") == P("mem(web):1024.5;gpus(web):{g0,g1}")
    assert r.names() == {"cpus", "mem", "ports", "gpus"}
    assert r.to_text() == "cpus:4;gpus(web):{g0,g1};mem(web):1024.5;ports:[31000-32000,33000-33100]"


def test_parse_default_role_and_explicit_unreserved() -> None:
    r = P("cpus:2;mem(*):512;disk(other):10", default_role="web")
    assert r.reserved("web") == P("cpus(web):2")
    assert r.unreserved() == P("mem:512")
    assert r.reserved("other") == P("disk(other):10")


def test_parse_repeated_names_add_and_empty_values_vanish() -> None:
    r = P("cpus:1;cpus:2.5;ports:[1-3];ports:[4-6];mem:0;gpus:{};net:[];;")
    assert r == P("cpus:3.5;ports:[1-6]")
    assert P("") == Resources()
    assert not P("  ;  ")
    assert not P("cpus:0")
    assert bool(P("cpus:0.001"))


@pytest.mark.parametrize(
    ("text", "substrings"),
    [
        (
            "cpus:abc;mem:1024",
            ["invalid resource 'cpus:abc' in 'cpus:abc;mem:1024'", "'abc' is not a number"],
        ),
        ("ports:[5-3]", ["ranges '[5-3]' in 'ports:[5-3]'", "begin 5 is past end 3"]),
        ("cpus:1;ports:[5-3]", ["ranges '[5-3]' in 'ports:[5-3]' in 'cpus:1;ports:[5-3]'"]),
        ("cpus:-1", ["'cpus:-1'", "'-1' is negative"]),
        ("cpus:inf", ["'inf' is not a finite number"]),
        ("cpus:nan", ["'nan' is not a finite number"]),
        ("cpus:", ["'cpus:'", "missing value"]),
        ("gpus:{a,b,a}", ["set '{a,b,a}' in 'gpus:{a,b,a}'", "duplicate item 'a'"]),
        ("gpus:{a,,b}", ["set '{a,,b}'", "empty item"]),
        (":1", ["invalid resource ':1'", "empty name"]),
        ("(r):1;mem:1", ["invalid resource '(r):1'", "empty name"]),
        ("cpus():1", ["empty role"]),
        ("cpus(-x):1", ["role '-x' starts with '-'"]),
        ("cpus(a//b):1", ["role 'a//b'"]),
        ("cpus(r:1", ["unbalanced parentheses in 'cpus(r'"]),
        ("cpus)r(:1", ["unbalanced parentheses"]),
        ("ports:[1-2", ["ranges '[1-2'", "unbalanced '['"]),
        ("ports:1-2]", ["unbalanced ']'"]),
        ("gpus:{a,b", ["set '{a,b'", "unbalanced '{'"]),
        ("ports:[1-[2]]", ["unbalanced brackets"]),
        ("ports:[1-2,]", ["empty range"]),
        ("ports:[7]", ["range '7' is not 'begin-end'"]),
        ("ports:[a-3]", ["'a' in 'a-3' is not a non-negative integer"]),
        ("ports:[-1-3]", ["'' in '-1-3' is not a non-negative integer"]),
        ("ports:[1-18446744073709551616]", ["does not fit in 64 bits"]),
        ("cpus", ["invalid resource 'cpus'", "expected 'name:value'"]),
        ("my cpus:1", ["name 'my cpus' contains ' '"]),
    ],
)
def test_parse_errors_name_the_bad_part(text: str, substrings: list[str]) -> None:
    with pytest.raises(ResourceError) as caught:
        P(text)
    for substring in substrings:
        assert substring in str(caught.value)


def test_resource_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        P("cpus:x")


def test_invalid_default_role() -> None:
    with pytest.raises(ResourceError, match="invalid default role ''"):
        P("cpus:1", default_role="")


# ------------------------------------------------------------------ scalars


def test_scalars_are_exact() -> None:
    assert P("cpus:0.1") + P("cpus:0.2") == P("cpus:0.3")
    assert (P("cpus:0.1") + P("cpus:0.2")).cpus == 0.3
    tenth = P("cpus:0.1")
    total = Resources()
    for _ in range(10_000):
        total = total + tenth
    assert total == P("cpus:1000")
    assert total.cpus == 1000.0
    for _ in range(10_000):
        total = total - tenth
    assert total == Resources()


def test_scalars_round_to_thousandths() -> None:
    assert not P("cpus:0.0004")
    assert P("cpus:0.0005") == P("cpus:0.001")
    assert P("mem:1.23456").mem == 1.235
    assert Resources.from_protos([scalar("cpus", 0.1 + 0.2)]) == P("cpus:0.3")
    assert P("cpus:1e3").cpus == 1000.0


# ------------------------------------------------------------------ ranges and sets


def test_ranges_merge() -> None:
    assert P("ports:[1-3,4-6]") == P("ports:[1-6]")
    assert P("ports:[4-6,1-3]").to_text() == "ports:[1-6]"
    assert P("ports:[1-5,3-8,10-10]").ports == [(1, 8), (10, 10)]
    assert P("ports:[1-2]") + P("ports:[3-4]") == P("ports:[1-4]")
    # adding ranges is a union (Mesos): ports held are not held twice
    assert P("ports:[1-5]") + P("ports:[3-8]") == P("ports:[1-8]")


def test_ranges_subtract_splits_a_range() -> None:
    r = P("ports:[1-10]") - P("ports:[3-4,7-7]")
    assert r.ports == [(1, 2), (5, 6), (8, 10)]
    assert P("ports:[1-10]") - P("ports:[1-10]") == Resources()
    assert P("ports:[1-10,20-30]") - P("ports:[1-1,30-30]") == P("ports:[2-10,20-29]")
    assert P("ports:[1-10,20-30]") - P("ports:[5-10,20-22]") == P("ports:[1-4,23-30]")


def test_ranges_subtract_not_contained_names_what_lacks() -> None:
    with pytest.raises(ResourceError) as caught:
        P("ports:[1-10];cpus:2") - P("ports:[9-12];cpus:3;mem:1")
    message = str(caught.value)
    assert "cannot subtract" in message
    assert "ports: lacks [11-12]" in message
    assert "cpus: has 2, needs 3" in message
    assert "mem: has none, needs 1" in message


def test_ranges_contains() -> None:
    big = P("ports:[1-10,20-30]")
    assert big.contains(P("ports:[2-3,25-30]"))
    assert not big.contains(P("ports:[9-21]"))
    assert not big.contains(P("ports:[31-31]"))
    assert not big.contains(P("ports:[0-0]"))
    assert P("ports:[1-3]") <= big


def test_sets() -> None:
    r = P("gpus:{a,b}") + P("gpus:{c}")
    assert r == P("gpus:{c,b,a}")
    assert r - P("gpus:{b}") == P("gpus:{a,c}")
    assert r.contains(P("gpus:{a,c}"))
    assert not r.contains(P("gpus:{d}"))
    with pytest.raises(ResourceError, match=r"gpus: lacks \{d\}"):
        r - P("gpus:{a,d}")


# ------------------------------------------------------------------ roles


def test_contains_across_roles() -> None:
    mixed = P("cpus(r):1;cpus:1")
    assert mixed.cpus == 2.0
    assert not mixed.contains(P("cpus:2"))
    assert not mixed.contains(P("cpus(r):2"))
    assert mixed.contains(P("cpus(r):1;cpus:1"))
    assert not P("cpus:4").contains(P("cpus(r):1"))
    assert not P("cpus(r):4").contains(P("cpus:1"))
    assert mixed.flatten().contains(P("cpus:2"))
    with pytest.raises(ResourceError, match=r"cpus\(r\): has none"):
        P("cpus:4") - P("cpus(r):1")


def test_comparisons_and_truth() -> None:
    assert P("cpus:1") <= P("cpus:2;mem:1")
    assert P("cpus:2;mem:1") >= P("cpus:1")
    assert not P("cpus:2") <= P("cpus:1")
    assert P("cpus:1") != P("cpus:1;mem:1")
    assert P("cpus:1") != "cpus:1"
    assert Resources() <= P("cpus:1")
    assert not Resources()


def test_role_views() -> None:
    r = P("cpus:1;cpus(a):2;cpus(a/b):4;cpus(c):8;mem(a):64")
    assert r.unreserved() == P("cpus:1")
    assert r.reserved() == P("cpus(a):2;cpus(a/b):4;cpus(c):8;mem(a):64")
    assert r.reserved("a") == P("cpus(a):2;mem(a):64")
    assert r.filter_role("a") == P("cpus:1;cpus(a):2;mem(a):64")
    # hierarchical roles: a reservation to `a` is usable by `a/b`, not the other way round
    assert r.filter_role("a/b") == P("cpus:1;cpus(a):2;cpus(a/b):4;mem(a):64")
    assert r.filter_role("ab") == P("cpus:1")
    assert r.flatten() == P("cpus:15;mem:64")
    assert r.flatten("x") == P("cpus(x):15;mem(x):64")
    with pytest.raises(ResourceError, match="cannot flatten to role '-x'"):
        r.flatten("-x")


def test_quantities() -> None:
    r = P("cpus:1.5;cpus(r):0.5;mem:100;disk(r):10;ports:[5-6];ports(r):[7-9,20-20]")
    assert r.cpus == 2.0
    assert r.mem == 100.0
    assert r.disk == 10.0
    assert r.scalar("gpus") == 0.0
    assert r.ports == [(5, 9), (20, 20)]
    assert r.names() == frozenset({"cpus", "mem", "disk", "ports"})
    view = (r + P("gpus(r):{b,a}")).to_dict()
    assert view == {
        "cpus": 2.0,
        "gpus": "{a,b}",
        "mem": 100.0,
        "disk": 10.0,
        "ports": "[5-9,20-20]",
    }
    assert list(view) == ["cpus", "gpus", "mem", "disk", "ports"]
    assert json.loads(json.dumps(view)) == view


def test_immutable() -> None:
    a = P("cpus:1;ports:[1-2]")
    b = P("cpus:2;ports:[3-4]")
    before = a.to_text()
    _ = a + b
    _ = (a + b) - a
    assert a.to_text() == before
    with pytest.raises(AttributeError):
        a._items = {}


# ------------------------------------------------------------------ JSON


def test_parse_json() -> None:
    text = json.dumps(
        [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "role": "r"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 1, "end": 3}, {"begin": 4, "end": 9}]},
            },
            {"name": "gpus", "type": "SET", "set": {"item": ["b", "a"]}},
        ]
    )
    assert P(text) == P("cpus(r):2;mem:512;ports:[1-9];gpus:{a,b}")
    assert P("  " + text, default_role="d") == P(
        "cpus(r):2;mem(d):512;ports(d):[1-9];gpus(d):{a,b}"
    )


@pytest.mark.parametrize(
    ("text", "substrings"),
    [
        ('[{"nmae": "cpus"}]', ["index 0", "nmae"]),
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "colour": 1}]', ["colour"]),
        ('[{"name": "cpus", "type": "SCALAR"}]', ["type SCALAR but no 'scalar' value"]),
        ('[{"name": "cpus", "scalar": {"value": 1}}]', ["missing type"]),
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]', ["-1.0 is negative"]),
        (
            '[{"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 3}]}}]',
            ["ranges '[5-3]'", "begin 5 is past end 3"],
        ),
        ('[{"name": "s", "type": "SET", "set": {"item": ["a", "a"]}}]', ["duplicate item 'a'"]),
        ('[{"name": "s", "type": "TEXT"}]', ["type TEXT is not allowed"]),
        ('[{"name": "", "type": "SCALAR", "scalar": {"value": 1}}]', ["empty name"]),
        (
            '[{"name": "c", "type": "SCALAR", "scalar": {"value": 1}, "ranges": {}}]',
            ["also a 'ranges' value"],
        ),
        (
            '[{"name": "c", "type": "SCALAR", "scalar": {"value": 1}}, 7]',
            ["index 1", "expected an object"],
        ),
        ('[{"name": "c",', ["invalid JSON resources"]),
    ],
)
def test_parse_json_errors(text: str, substrings: list[str]) -> None:
    with pytest.raises(ResourceError) as caught:
        P(text)
    for substring in substrings:
        assert substring in str(caught.value)


def test_json_round_trip() -> None:
    r = P("cpus(r):2.5;mem:512;ports:[1-3,7-9];gpus:{a,b}")
    as_json = json.dumps([json_format.MessageToDict(p) for p in r.to_protos()])
    assert P(as_json) == r
    # dynamic reservations and volumes have no text syntax: to_text falls back to JSON
    rich = Resources.from_protos([dynamic("cpus", 1, "r", "alice"), volume("v1", 100)]) + r
    assert rich.to_text().startswith("[")
    assert P(rich.to_text()) == rich
    assert repr(rich) == str(rich) == rich.to_text()


# ------------------------------------------------------------------ protobuf


def test_proto_round_trip_and_order() -> None:
    r = P("ports:[31000-32000];zeta:1;mem(r):64;cpus:2;cpus(r):0.25;gpus:{x}")
    protos = r.to_protos()
    assert [(p.name, p.role) for p in protos] == [
        ("cpus", ""),
        ("cpus", "r"),
        ("gpus", ""),
        ("mem", "r"),
        ("ports", ""),
        ("zeta", ""),
    ]
    assert protos[1].scalar.value == 0.25
    assert protos[1].type == corral_pb2.Value.SCALAR
    assert not protos[1].reservations  # a static reservation travels as `role`
    assert list(protos[4].ranges.range) == [corral_pb2.Value.Range(begin=31000, end=32000)]
    assert Resources.from_protos(protos) == r
    assert Resources.from_protos(reversed(protos)).to_protos() == protos
    wire = [corral_pb2.Resource.FromString(p.SerializeToString()) for p in protos]
    assert Resources.from_protos(wire) == r


def test_reservations_are_part_of_the_key() -> None:
    dyn = Resources.from_protos([dynamic("cpus", 2, "r", "alice")])
    static = P("cpus(r):2")
    assert dyn != static
    assert dyn.reserved("r") == dyn
    assert dyn.filter_role("r") == dyn
    assert dyn.flatten("r") == static
    (proto,) = dyn.to_protos()
    assert proto.role == "r"
    assert [(i.type, i.role, i.principal) for i in proto.reservations] == [
        (ReservationType.DYNAMIC, "r", "alice")
    ]
    assert Resources.from_protos([proto]) == dyn
    # `role` and the reservation stack must agree
    proto.role = "other"
    with pytest.raises(ResourceError, match="role 'other' is not the reservation's role 'r'"):
        Resources.from_protos([proto])
    bad = scalar("cpus", 1)
    bad.reservations.add(role=UNRESERVED)
    with pytest.raises(ResourceError, match="cannot be to role"):
        Resources.from_protos([bad])


def test_checked_entries_are_remembered_by_content_not_by_message() -> None:
    proto = scalar("cpus", 2)
    first = Resources.from_protos([proto])
    proto.scalar.value = 3  # the same message, other content: checked again
    assert Resources.from_protos([proto]) == P("cpus:3") and first == P("cpus:2")
    assert Resources.from_protos([proto]) + Resources.from_protos([proto]) == P("cpus:6")
    assert Resources.from_protos([proto]) == P("cpus:3")  # (a shared entry is not changed by the sum)
    proto.scalar.value = -1
    for _ in range(2):  # an invalid resource is refused every time, never remembered
        with pytest.raises(ResourceError, match="cpus"):
            Resources.from_protos([proto])


def test_persistent_volumes_are_indivisible() -> None:
    v1 = Resources.from_protos([volume("v1", 100)])
    v2 = Resources.from_protos([volume("v2", 100)])
    both = v1 + v2
    assert both.disk == 200.0
    assert (both + P("disk(db):5")).flatten() == P("disk:205")
    assert (both + P("disk(db):5")).flatten("db") == P("disk(db):205")
    assert both - v1 == v2
    with pytest.raises(ResourceError, match="persistent volume 'v1' is added twice"):
        both + v1
    with pytest.raises(ResourceError, match="persistent volume 'v1' is added twice"):
        Resources.from_protos([volume("v1", 1), volume("v1", 1)])
    half = Resources.from_protos([volume("v1", 50)])
    assert not v1.contains(half)
    with pytest.raises(ResourceError, match="only subtracted whole"):
        v1 - half
    assert not v1.contains(P("disk(db):100"))
    unreserved = volume("v3", 1)
    unreserved.ClearField("role")
    with pytest.raises(ResourceError, match="persistent volume 'v3' is not on reserved disk"):
        Resources.from_protos([unreserved])
    misplaced = scalar("mem", 1, "db")
    misplaced.disk.persistence.id = "v4"
    with pytest.raises(ResourceError, match="only the 'disk' scalar"):
        Resources.from_protos([misplaced])


def test_builders() -> None:
    assert scalar("cpus", 0.5, "r") == corral_pb2.Resource(
        name="cpus",
        type=corral_pb2.Value.SCALAR,
        scalar=corral_pb2.Value.Scalar(value=0.5),
        role="r",
    )
    built = ranges("ports", [(4, 6), (1, 3), (10, 12)])
    assert [(s.begin, s.end) for s in built.ranges.range] == [(1, 6), (10, 12)]
    assert not built.HasField("role")
    assert list(set_items("gpus", ["b", "a"]).set.item) == ["a", "b"]
    r = Resources.from_protos(
        [scalar("cpus", 1), ranges("ports", [(1, 2)], "r"), set_items("g", ["x"])]
    )
    assert r == P("cpus:1;ports(r):[1-2];g:{x}")
    with pytest.raises(ResourceError, match="is negative"):
        scalar("cpus", -1)
    with pytest.raises(ResourceError, match="begin 3 is past end 1"):
        ranges("ports", [(3, 1)])
    with pytest.raises(ResourceError, match="not within"):
        ranges("ports", [(-1, 1)])
    with pytest.raises(ResourceError, match="duplicate item 'a'"):
        set_items("gpus", ["a", "a"])
    with pytest.raises(ResourceError, match="empty name"):
        scalar("", 1)
    with pytest.raises(ResourceError, match="role 'a b'"):
        scalar("cpus", 1, "a b")


# ------------------------------------------------------------------ attributes


def test_parse_attributes() -> None:
    attrs = parse_attributes("rack:r1; level:3.5;ids:[4-5,1-3];tags:{b,a};os:ubuntu-22.04/x")
    assert [(a.name, ValueKind(a.type)) for a in attrs] == [
        ("rack", ValueKind.TEXT),
        ("level", ValueKind.SCALAR),
        ("ids", ValueKind.RANGES),
        ("tags", ValueKind.SET),
        ("os", ValueKind.TEXT),
    ]
    assert attrs[0].text.value == "r1"
    assert attrs[1].scalar.value == 3.5
    assert [(s.begin, s.end) for s in attrs[2].ranges.range] == [(1, 5)]
    assert list(attrs[3].set.item) == ["a", "b"]
    assert attributes_to_dict(attrs) == {
        "rack": "r1",
        "level": 3.5,
        "ids": "[1-5]",
        "tags": "{a,b}",
        "os": "ubuntu-22.04/x",
    }
    assert parse_attributes("") == []
    assert parse_attributes("n:-2")[0].scalar.value == -2.0


@pytest.mark.parametrize(
    ("text", "substrings"),
    [
        ("rack:r 1", ["invalid attribute 'rack:r 1'", "' ' in 'r 1'"]),
        ("a:1;rack", ["invalid attribute 'rack' in 'a:1;rack'", "expected 'name:value'"]),
        (":x", ["empty name"]),
        ("rack:", ["missing value"]),
        ("ids:[5-3]", ["ranges '[5-3]' in 'ids:[5-3]'", "begin 5 is past end 3"]),
        ("ids:[1-", ["unbalanced '['"]),
        ("tags:{a,a}", ["set '{a,a}'", "duplicate item 'a'"]),
        ("ra ck:1", ["' ' in 'ra ck'"]),
    ],
)
def test_parse_attributes_errors(text: str, substrings: list[str]) -> None:
    with pytest.raises(ResourceError) as caught:
        parse_attributes(text)
    for substring in substrings:
        assert substring in str(caught.value)


# ------------------------------------------------------------------ detection


def test_leave_for_system_is_the_mesos_rule() -> None:
    assert leave_for_system(16384, 1024) == 15360  # plenty: keep 1 GB
    assert leave_for_system(2048, 1024) == 1024
    assert leave_for_system(1500, 1024) == 750  # less than 2 GB: keep half
    assert leave_for_system(0, 1024) == 0
    assert leave_for_system(100_000, 5120) == 94_880


def test_detect_resources(tmp_path: Path) -> None:
    detected = detect_resources(str(tmp_path))
    assert detected.cpus == float(os.cpu_count() or 1)
    assert detected.ports == [(31000, 32000)]
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    assert detected.mem == leave_for_system(total_kb // 1024, 1024)
    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    assert 0 < detected.disk <= free_mb
    assert detected == detected.unreserved()
    assert detected.names() == {"cpus", "mem", "disk", "ports"}


def test_detect_resources_missing_work_dir(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(ResourceError, match="nope"):
        detect_resources(missing)


# ------------------------------------------------------------------ properties

ROLES = (UNRESERVED, "r", "a/b")
SCALAR_NAMES = ("cpus", "mem", "disk")
SET_ITEMS = tuple(f"g{i}" for i in range(12))


@st.composite
def disjoint_pair(draw: st.DrawFn) -> tuple[Resources, Resources]:
    """Two random Resources whose ranges and set items never overlap (scalars may)."""
    protos: dict[str, list[corral_pb2.Resource]] = {"a": [], "b": []}
    owner = st.sampled_from(("a", "b"))
    role = st.sampled_from(ROLES)
    for _ in range(draw(st.integers(0, 8))):
        milli = draw(st.integers(0, 10**9))
        protos[draw(owner)].append(
            scalar(draw(st.sampled_from(SCALAR_NAMES)), milli / 1000, draw(role))
        )
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for port in draw(st.sets(st.integers(0, 200), max_size=40)):
        spans.setdefault((draw(owner), draw(role)), []).append((port, port))
    for (who, where), ports in spans.items():
        protos[who].append(ranges("ports", ports, where))
    items: dict[tuple[str, str], list[str]] = {}
    for item in draw(st.sets(st.sampled_from(SET_ITEMS))):
        items.setdefault((draw(owner), draw(role)), []).append(item)
    for (who, where), names in items.items():
        protos[who].append(set_items("gpus", names, where))
    return Resources.from_protos(protos["a"]), Resources.from_protos(protos["b"])


@settings(max_examples=300)
@given(disjoint_pair())
def test_property_add_then_subtract(pair: tuple[Resources, Resources]) -> None:
    a, b = pair
    assert a + b - b == a
    assert a + b - a == b
    assert (a + b).contains(a)
    assert (a + b).contains(b)
    assert a + b == b + a
    assert (a + b).cpus == pytest.approx(a.cpus + b.cpus, abs=1e-9)


@settings(max_examples=200)
@given(disjoint_pair(), disjoint_pair())
def test_property_subtract_iff_contained(
    first: tuple[Resources, Resources], second: tuple[Resources, Resources]
) -> None:
    a, b = first[0], second[0]
    assert (a + b).contains(a)  # also when ranges and sets overlap
    if a.contains(b):
        assert (a - b) + b == a
    else:
        with pytest.raises(ResourceError, match="cannot subtract"):
            a - b


@settings(max_examples=200)
@given(disjoint_pair())
def test_property_round_trips(pair: tuple[Resources, Resources]) -> None:
    a = pair[0] + pair[1]
    assert P(a.to_text()) == a
    assert Resources.from_protos(a.to_protos()) == a
    as_json = json.dumps([json_format.MessageToDict(p) for p in a.to_protos()])
    assert P(as_json) == a
    assert a.flatten().cpus == a.cpus
