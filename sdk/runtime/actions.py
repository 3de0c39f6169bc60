"""How the actions an engine emits are carried out: one table per executor of actions.

Every executor of an engine's actions (a `Runtime`, with what its daemon or driver
adds, and each process the simulator runs) keeps ONE table, a dict from action type to
the function that performs it, built once and looked up by `type(action)` for each
action: no isinstance chain, and a subclass is not its parent's action. Each engine
class declares the action types it emits (`Engine.ACTIONS`); the tests
check every table against them with `unhandled`, so an action nobody performs fails a
test instead of showing up as a logged error at run time.
"""
from __future__ import annotations

from typing import Any, Callable, Container, Iterable, Mapping

#: carries out one action
Performer = Callable[[Any], None]
#: action type -> its performer
Performers = Mapping[type, Performer]


class UnhandledAction(TypeError):
    """An engine emitted an action its executor has no performer for."""


def perform(performers: Performers, action: Any, engine: str) -> None:
    """Carry out `action` by its type's performer; UnhandledAction (naming `engine` and
    the action) when there is none."""
    performer = performers.get(type(action))
    if performer is None:
        raise UnhandledAction(f"the {engine} engine emitted an action nothing performs: {action!r}")
    performer(action)


def unhandled(declared: Iterable[type], performed: Container[type]) -> list[str]:
    """The names of the `declared` action types not among those `performed` (a table, or
    `Runtime.performs()`), sorted."""
    return sorted(t.__name__ for t in declared if t not in performed)
