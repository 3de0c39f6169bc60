"""The election rules as a pure state machine: no ZooKeeper, no clock."""
from __future__ import annotations

import pytest

from corral.engines.master.leadership import LEASE_FRACTION, Change, Leadership, Standing
from corral.net.zookeeper import Session

A, B, C = "json.info_0000000001", "json.info_0000000002", "json.info_0000000003"


def connected(timeout: float = 10.0) -> Leadership:
    lead = Leadership(timeout)
    lead.session_changed(Session.CONNECTED, 0.0)
    return lead


def test_the_lowest_contender_is_elected_and_acts_under_its_lease():
    lead = connected()
    lead.submitted(A)
    assert lead.observed([B, A, "something-else"], sent_at=100.0) is Change.ELECTED
    assert lead.standing is Standing.LEADING and lead.leader == A
    assert lead.acts(100.0 + 10.0 * LEASE_FRACTION - 0.01)
    assert not lead.acts(100.0 + 10.0 * LEASE_FRACTION)


def test_a_higher_contender_waits_and_is_elected_when_the_leader_goes():
    lead = connected()
    lead.submitted(B)
    assert lead.observed([A, B], sent_at=1.0) is None
    assert lead.standing is Standing.CONTENDING and lead.leader == A and not lead.acts(1.0)
    assert lead.observed([B, C], sent_at=2.0) is Change.ELECTED


def test_no_election_while_suspended():
    lead = connected()
    lead.submitted(A)
    lead.session_changed(Session.SUSPENDED, 1.0)
    assert lead.observed([A], sent_at=1.0) is None
    lead.session_changed(Session.CONNECTED, 2.0)
    assert lead.observed([A], sent_at=2.0) is Change.ELECTED


def test_renewals_extend_the_lease_and_a_frozen_leader_is_deposed_on_its_first_tick():
    lead = connected(timeout=4.0)
    lead.submitted(A)
    lead.observed([A], sent_at=0.0)
    lead.renewed(2.0)
    assert lead.acts(4.9) and lead.tick(4.9) is None
    # frozen (SIGSTOP) past the session timeout: it stops acting the moment it runs
    assert not lead.acts(30.0)
    assert lead.tick(30.0) is Change.DEPOSED
    assert lead.standing is Standing.DEPOSED and "no answer from ZooKeeper" in lead.reason
    lead.renewed(30.0)  # an answer after being deposed changes nothing
    assert not lead.acts(30.5)


def test_suspended_leader_keeps_acting_only_until_its_lease_runs_out():
    lead = connected(timeout=10.0)
    lead.submitted(A)
    lead.observed([A], sent_at=0.0)
    assert lead.session_changed(Session.SUSPENDED, 1.0) is None
    lead.renewed(2.0)  # no renewal counts while suspended
    assert lead.acts(7.0)
    assert lead.tick(7.5) is Change.DEPOSED


def test_a_lost_session_deposes_a_leader_and_ends_a_candidacy():
    lead = connected()
    lead.submitted(A)
    lead.observed([A], sent_at=0.0)
    assert lead.session_changed(Session.LOST, 1.0) is Change.DEPOSED
    assert "expired" in lead.reason and lead.candidacy is None
    contender = connected()
    contender.submitted(B)
    contender.observed([A, B], sent_at=0.0)
    assert contender.session_changed(Session.LOST, 1.0) is None
    assert contender.candidacy is None and contender.standing is Standing.CONTENDING


def test_a_leader_whose_znode_vanished_or_was_fenced_is_deposed():
    lead = connected()
    lead.submitted(B)
    lead.observed([B], sent_at=0.0)
    assert lead.observed([C], sent_at=1.0) is Change.DEPOSED
    other = connected()
    other.submitted(A)
    other.observed([A], sent_at=0.0)
    assert other.registry_failed("epoch taken") is Change.DEPOSED and "epoch taken" in other.reason
    assert other.registry_failed("again") is None


def test_a_bad_session_timeout_is_refused():
    with pytest.raises(ValueError, match="-1"):
        Leadership(-1)


def test_a_contender_holding_garbage_leads_nobody():
    lead = connected()
    lead.submitted(B)
    assert lead.observed([A, B], sent_at=1.0) is None
    assert lead.observed([A, B], sent_at=2.0, unreadable={A}) is Change.ELECTED
    assert lead.leader == B


def test_no_election_before_the_session_is_connected():
    lead = Leadership(10.0)
    assert lead.session is Session.LOST  # as a kazoo client starts
    lead.submitted(A)
    assert lead.observed([A], sent_at=0.0) is None and not lead.acts(0.0)
    lead.session_changed(Session.CONNECTED, 1.0)
    assert lead.observed([A], sent_at=1.0) is Change.ELECTED
