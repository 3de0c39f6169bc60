"""Agents' port ranges in the Cassandra tests are found free at run time
(`PortRangeClaim`): two test runs on one machine never offer the same ports."""
from __future__ import annotations

import socket

import pytest

from corral.examples.cassandra import testing
from corral.examples.cassandra.testing import PortRangeClaim


def test_claims_held_at_once_are_disjoint_and_every_port_binds():
    claims = [PortRangeClaim(width=50) for _ in range(4)]
    try:
        ports = [p for c in claims for p in range(c.first, c.last + 1)]
        assert len(ports) == len(set(ports)) == 200
        assert all(testing.RANGE_FLOOR <= c.first and c.last < testing.RANGE_CEILING for c in claims)
        assert all(c.resource == f"ports:[{c.first}-{c.last}]" for c in claims)
    finally:
        for claim in claims:
            claim.close()


def test_a_range_with_a_port_in_use_or_claimed_elsewhere_is_passed_over(monkeypatch, tmp_path):
    monkeypatch.setattr(testing, "CLAIMS_DIR", tmp_path)
    probe = PortRangeClaim(width=20)
    probe.close()  # a free stretch of 20 ports: confine the search to it, two ranges of 10
    floor = probe.first
    monkeypatch.setattr(testing, "RANGE_FLOOR", floor)
    monkeypatch.setattr(testing, "RANGE_CEILING", floor + 20)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", floor + 3))
        listener.listen()
        claim = PortRangeClaim(width=10)
        assert (claim.first, claim.last) == (floor + 10, floor + 19)  # the range holding floor+3 is in use
        with pytest.raises(RuntimeError, match=f"no free range of 10 ports between {floor} and {floor + 20}"):
            PortRangeClaim(width=10)  # the other one is claimed (by this process's lock)
        claim.close()
        again = PortRangeClaim(width=10)
        assert again.first == floor + 10  # released: claimable again
        again.close()
