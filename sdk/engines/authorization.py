"""How engines authorise: the ACLs (`corral.security.acls`) asked about a principal, an
action and its object, each denial counted per action and told in one wording.

The principal is the one the transport proved (`Engine.principal` for messages; the
HTTP credentials' for operator calls), never one a message claims. Without ACLs
everything is allowed (Mesos' default); a denial changes nothing.
"""
from __future__ import annotations

from corral.security.errors import Forbidden
from corral.security.acls import Acls, Action

#: the ACLs when none are given: permissive, no rules
ALLOW_ALL = Acls()


class Denied(Forbidden):
    """An action the ACLs do not allow; the message names the principal, the action and
    its object (an HTTP route that raises it answers 403)."""

    def __init__(self, action: Action, principal: str | None, obj: str | None) -> None:
        self.action = action
        self.principal = principal
        self.object = obj
        super().__init__(denial(action, principal, obj))


def denial(action: Action, principal: str | None, obj: str | None) -> str:
    """'principal 'ops' is not authorized to update_weights for role 'prod''"""
    who = f"principal {principal!r}" if principal is not None else "an unauthenticated caller"
    kind = action.object_field.removesuffix("s").replace("_", " ")
    what = f" for {kind} {obj!r}" if obj is not None else ""
    return f"{who} is not authorized to {action.key}{what}"


class Authorizer:
    """An engine's ACLs and the denials it counted (`denials`: action key -> count)."""

    def __init__(self, acls: Acls | None = None) -> None:
        self.acls = acls or ALLOW_ALL
        self.denials: dict[str, int] = {}
        #: (the master's) transport address -> the principal that registered, or tried
        #: to, from it (see `corral.engines.master.peers`); kept here so that the master
        #: engine stays within its attribute budget (tests/engines/test_engine_attributes.py)
        self.principals_at: dict[str, str] = {}

    def allows(self, action: Action, principal: str | None, obj: str | None) -> bool:
        """Whether the ACLs allow it; a denial is counted."""
        if self.acls.authorized(action, principal, obj):
            return True
        self.count(action)
        return False

    def count(self, action: Action) -> None:
        """Count a denial decided elsewhere (e.g. a principal acting for another's framework)."""
        self.denials[action.key] = self.denials.get(action.key, 0) + 1

    def check(self, action: Action, principal: str | None, obj: str | None) -> None:
        """Denied (counted) unless the ACLs allow it."""
        if not self.allows(action, principal, obj):
            raise Denied(action, principal, obj)

    def may_view(self, action: Action, principal: str | None, obj: str | None) -> bool:
        """Whether a view (view_frameworks, view_tasks, access_sandboxes) shows the
        object; what it hides is not counted as a denial."""
        return self.acls.authorized(action, principal, obj)
