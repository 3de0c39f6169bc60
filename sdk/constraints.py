"""Placement constraints over agent attributes, for schedulers deciding which offers to
use (the operators Marathon made familiar): unique per host, group by an attribute,
attribute equals / like / unlike, at most N per attribute value.

A constraint looks at an offer and at the tasks already placed (`Placement`: the
attribute values of the agents they run on) and says whether one more task may go there.
Pure functions of their inputs; the caller keeps the placements.
"""
from __future__ import annotations

import enum
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from corral.protos import corral_pb2 as pb
from corral.resources import attributes_to_dict

#: the pseudo-attribute every offer has: its agent's hostname
HOSTNAME = "hostname"


class Operator(enum.Enum):
    UNIQUE = "UNIQUE"        # at most one task per value of the attribute
    GROUP_BY = "GROUP_BY"    # spread evenly over the attribute's values (argument: how many values)
    EQUALS = "EQUALS"        # the attribute equals the argument
    LIKE = "LIKE"            # the attribute matches the regular expression
    UNLIKE = "UNLIKE"        # the attribute does not match the regular expression
    MAX_PER = "MAX_PER"      # at most N tasks per value of the attribute


class ConstraintError(ValueError):
    """A constraint that cannot be used; the message names the bad part."""


def offer_attributes(offer: pb.Offer) -> dict[str, str]:
    """The offer's attributes as text, plus `hostname`."""
    values = {name: str(value) for name, value in attributes_to_dict(offer.attributes).items()}
    values[HOSTNAME] = offer.hostname
    return values


@dataclass
class Placement:
    """Where the tasks of one group already run: one attribute map per task."""

    tasks: list[Mapping[str, str]] = field(default_factory=list)

    def add(self, attributes: Mapping[str, str]) -> None:
        self.tasks.append(dict(attributes))

    def counts(self, attribute: str) -> Counter[str]:
        return Counter(t[attribute] for t in self.tasks if attribute in t)


@dataclass(frozen=True)
class Constraint:
    attribute: str
    operator: Operator
    argument: str = ""

    @classmethod
    def parse(cls, spec: Iterable[str]) -> "Constraint":
        """From Marathon's form, e.g. ["hostname", "UNIQUE"], ["rack", "GROUP_BY", "3"],
        ["zone", "LIKE", "us-.*"], ["rack", "MAX_PER", "2"]."""
        parts = list(spec)
        if len(parts) not in (2, 3) or not parts[0]:
            raise ConstraintError(f"constraint {parts!r}: expected [attribute, operator] or [attribute, operator, value]")
        try:
            operator = Operator(parts[1].upper())
        except ValueError:
            names = ", ".join(o.value for o in Operator)
            raise ConstraintError(f"constraint {parts!r}: unknown operator {parts[1]!r} (one of {names})") from None
        argument = parts[2] if len(parts) == 3 else ""
        constraint = cls(parts[0], operator, argument)
        constraint.validate()
        return constraint

    def validate(self) -> None:
        needs_argument = {Operator.EQUALS, Operator.LIKE, Operator.UNLIKE, Operator.MAX_PER}
        if self.operator in needs_argument and not self.argument:
            raise ConstraintError(f"constraint {self.attribute} {self.operator.value} needs a value")
        if self.operator in (Operator.MAX_PER, Operator.GROUP_BY) and self.argument:
            if not self.argument.isdigit() or int(self.argument) < 1:
                raise ConstraintError(f"constraint {self.attribute} {self.operator.value}: "
                                      f"{self.argument!r} is not a positive whole number")
        if self.operator in (Operator.LIKE, Operator.UNLIKE):
            try:
                re.compile(self.argument)
            except re.error as exc:
                raise ConstraintError(f"constraint {self.attribute} {self.operator.value}: "
                                      f"bad regular expression {self.argument!r}: {exc}") from None

    def allows(self, attributes: Mapping[str, str], placed: Placement) -> bool:
        """May one more task go to an agent with `attributes`?"""
        value = attributes.get(self.attribute)
        op = self.operator
        if op is Operator.UNLIKE:
            return value is None or re.fullmatch(self.argument, value) is None
        if value is None:
            return False
        if op is Operator.EQUALS:
            return value == self.argument
        if op is Operator.LIKE:
            return re.fullmatch(self.argument, value) is not None
        counts = placed.counts(self.attribute)
        if op is Operator.UNIQUE:
            return counts[value] == 0
        if op is Operator.MAX_PER:
            return counts[value] < int(self.argument)
        # GROUP_BY: never put more on this value than on the least used one, counting values
        # not used yet (the argument says how many values there are to spread over)
        expected = int(self.argument) if self.argument else len(counts) or 1
        least = 0 if len(counts) < expected else min(counts.values())
        return counts[value] <= least


def allows(constraints: Iterable[Constraint], offer: pb.Offer, placed: Placement) -> bool:
    """Do all `constraints` let one more task go to `offer`'s agent?"""
    attributes = offer_attributes(offer)
    return all(c.allows(attributes, placed) for c in constraints)
