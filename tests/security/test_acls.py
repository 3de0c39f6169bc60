"""ACLs in Mesos' shape: first applicable rule wins, NONE denies, permissive decides the rest."""
from __future__ import annotations

import pytest

from corral.security.acls import AclError, Acls, Action

DOC = {
    "permissive": False,
    "register_frameworks": [
        {"principals": {"values": ["analytics"]}, "roles": {"values": ["batch", "adhoc"]}},
        {"principals": {"type": "NONE"}, "roles": {"values": ["prod"]}},
        {"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
    ],
    "run_tasks": [
        {"principals": {"values": ["analytics"]}, "users": {"type": "NONE"}},
        {"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}},
    ],
}


def test_first_applicable_rule_decides_and_none_denies():
    acls = Acls.parse(DOC)
    assert acls.authorized(Action.REGISTER_FRAMEWORKS, "analytics", "batch")
    assert not acls.authorized(Action.REGISTER_FRAMEWORKS, "analytics", "web")  # no rule: not permissive
    assert not acls.authorized(Action.REGISTER_FRAMEWORKS, "ops", "prod")  # nobody may use prod
    assert acls.authorized(Action.REGISTER_FRAMEWORKS, "ops", "web")
    assert not acls.authorized(Action.RUN_TASKS, "analytics", "nobody")  # analytics may run as no user
    assert acls.authorized(Action.RUN_TASKS, "ops", "nobody")
    assert not acls.authorized(Action.RUN_TASKS, "ops", "root")
    assert not acls.authorized(Action.REGISTER_FRAMEWORKS, None, "batch")


def test_permissive_allows_what_no_rule_covers():
    acls = Acls.parse({"update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "NONE"}}]})
    assert not acls.authorized(Action.UPDATE_WEIGHTS, "ops", "web")
    assert acls.authorized(Action.UPDATE_WEIGHTS, "someone", "web")
    assert Acls().authorized(Action.MARK_AGENTS_GONE, None, "a1")


@pytest.mark.parametrize("doc, message", [
    ({"permissive": "no"}, "permissive"),
    ({"register_framework": []}, "unknown action 'register_framework'"),
    ({"run_tasks": {}}, "run_tasks must be a list"),
    ({"run_tasks": [{"principals": {"type": "SOME"}}]}, "unknown entity type 'SOME'"),
    ({"run_tasks": [{"principals": {"values": "ops"}}]}, "list of strings"),
    ({"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}, "unknown field"),
    ([], "JSON object"),
])
def test_bad_acls_are_named(doc, message):
    with pytest.raises(AclError, match=message):
        Acls.parse(doc)
