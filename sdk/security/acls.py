"""Access control lists in Mesos' JSON shape, and the one rule that reads them.

    {
      "permissive": false,
      "register_frameworks": [
        {"principals": {"values": ["analytics"]}, "roles": {"values": ["batch"]}},
        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}
      ],
      "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}]
    }

Each action has a list of rules; a rule names principals (who asks) and objects (what
the action is done to: a role, a user, a framework's principal...), each as
`{"values": [...]}`, `{"type": "ANY"}` or `{"type": "NONE"}`. A rule applies to a
request when its principals cover the requester or are NONE, and its objects cover the
object or are NONE. The first rule that applies decides: allowed, unless the rule says
NONE on either side ("these principals may do this to nothing", "nobody may do this to
these objects"). When no rule applies, `permissive` decides (true unless set).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.security.jsonfile import read_json


class AclError(ValueError):
    """An ACL document that cannot be used; the message names the bad part."""


class Action(enum.Enum):
    """What can be authorised, with the name of its object field in the JSON."""

    REGISTER_FRAMEWORKS = ("register_frameworks", "roles")
    REGISTER_AGENTS = ("register_agents", "agents")
    RUN_TASKS = ("run_tasks", "users")
    TEARDOWN_FRAMEWORKS = ("teardown_frameworks", "framework_principals")
    KILL_TASKS = ("kill_tasks", "framework_principals")
    RESERVE_RESOURCES = ("reserve_resources", "roles")
    UNRESERVE_RESOURCES = ("unreserve_resources", "reserver_principals")
    CREATE_VOLUMES = ("create_volumes", "roles")
    DESTROY_VOLUMES = ("destroy_volumes", "creator_principals")
    UPDATE_WEIGHTS = ("update_weights", "roles")
    UPDATE_QUOTAS = ("update_quotas", "roles")
    VIEW_FRAMEWORKS = ("view_frameworks", "users")
    VIEW_TASKS = ("view_tasks", "users")
    ACCESS_SANDBOXES = ("access_sandboxes", "users")
    MARK_AGENTS_GONE = ("mark_agents_gone", "agents")

    @property
    def key(self) -> str:
        return self.value[0]

    @property
    def object_field(self) -> str:
        return self.value[1]


_BY_KEY = {action.key: action for action in Action}


class Coverage(enum.Enum):
    SOME = "some"
    ANY = "ANY"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Entity:
    """Who or what a rule names."""

    coverage: Coverage
    values: frozenset[str] = frozenset()

    def covers(self, value: str | None) -> bool:
        if self.coverage is Coverage.ANY:
            return True
        return self.coverage is Coverage.SOME and value is not None and value in self.values

    @classmethod
    def parse(cls, doc: Any, where: str) -> "Entity":
        if not isinstance(doc, dict):
            raise AclError(f"{where}: expected {{\"values\": [...]}} or {{\"type\": \"ANY\"|\"NONE\"}}, not {doc!r}")
        if "values" in doc:
            values = doc["values"]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise AclError(f"{where}: \"values\" must be a list of strings, not {values!r}")
            return cls(Coverage.SOME, frozenset(values))
        kind = doc.get("type")
        if kind in ("ANY", "NONE"):
            return cls(Coverage(kind))
        raise AclError(f"{where}: unknown entity type {kind!r} (expected ANY or NONE, or a \"values\" list)")


@dataclass(frozen=True, slots=True)
class Rule:
    principals: Entity
    objects: Entity

    def applies(self, principal: str | None, obj: str | None) -> bool:
        return ((self.principals.coverage is Coverage.NONE or self.principals.covers(principal))
                and (self.objects.coverage is Coverage.NONE or self.objects.covers(obj)))

    @property
    def allows(self) -> bool:
        return Coverage.NONE not in (self.principals.coverage, self.objects.coverage)


@dataclass(frozen=True)
class Acls:
    """A parsed ACL document; `Acls()` allows everything (permissive, no rules)."""

    permissive: bool = True
    rules: dict[Action, tuple[Rule, ...]] = field(default_factory=dict)

    def authorized(self, action: Action, principal: str | None, obj: str | None) -> bool:
        """May `principal` (None: unauthenticated) do `action` to `obj`?"""
        for rule in self.rules.get(action, ()):
            if rule.applies(principal, obj):
                return rule.allows
        return self.permissive

    @classmethod
    def parse(cls, doc: Any, where: str = "ACLs") -> "Acls":
        if not isinstance(doc, dict):
            raise AclError(f"{where}: expected a JSON object, not {type(doc).__name__}")
        permissive = doc.get("permissive", True)
        if not isinstance(permissive, bool):
            raise AclError(f"{where}: \"permissive\" must be true or false, not {permissive!r}")
        rules: dict[Action, tuple[Rule, ...]] = {}
        for key, entries in doc.items():
            if key == "permissive":
                continue
            action = _BY_KEY.get(key)
            if action is None:
                raise AclError(f"{where}: unknown action {key!r} (known: {', '.join(sorted(_BY_KEY))})")
            if not isinstance(entries, list):
                raise AclError(f"{where}: {key} must be a list of rules, not {type(entries).__name__}")
            parsed = []
            for i, entry in enumerate(entries):
                at = f"{where}: {key}[{i}]"
                if not isinstance(entry, dict):
                    raise AclError(f"{at}: a rule is an object, not {entry!r}")
                unknown = set(entry) - {"principals", action.object_field}
                if unknown:
                    raise AclError(f"{at}: unknown field(s) {sorted(unknown)} (a {key} rule has "
                                   f"\"principals\" and \"{action.object_field}\")")
                parsed.append(Rule(Entity.parse(entry.get("principals", {"type": "ANY"}), f"{at}.principals"),
                                   Entity.parse(entry.get(action.object_field, {"type": "ANY"}),
                                                f"{at}.{action.object_field}")))
            rules[action] = tuple(parsed)
        return cls(permissive, rules)

    @classmethod
    def load(cls, path: str | Path) -> "Acls":
        """Read an ACL file; AclError naming the file and what is wrong."""
        return cls.parse(read_json(path, "ACL file", AclError), f"ACL file {path}")
