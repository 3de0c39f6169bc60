"""Each engine declares the actions it emits (`Engine.ACTIONS`): the declaration is
checked against the engine's code, read as source. Every action leaves an engine through
`self.emit(SomeAction(...))`, a send (`self.send`, `send_row`, `send_rows`: a `Send`
once taken), or, for the scheduler driver's status updates, the Callbacks its status
loop makes (`scheduler._status`); anything else that touches the outbox fails here."""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import pytest

from corral._core import COMPILED_MODULES
from corral.engines import agent, executor, master, scheduler
from corral.engines.agent import AgentEngine
from corral.engines.base import Callback, Send
from corral.engines.executor import ExecutorEngine
from corral.engines.master import MasterEngine
from corral.engines.scheduler import SchedulerEngine

SENDS = {"send", "send_row", "send_rows"}
#: the one place an engine adds to its outbox in bulk, and what it adds
BULK = {("corral.engines.scheduler.status", "callbacks"): Callback}


def source(module) -> str:
    """A module's source (a compiled module's: its .py, the one source of both builds)."""
    path = COMPILED_MODULES.get(module.__name__)
    if path is None:
        return inspect.getsource(module)
    with open(path) as f:
        return f.read()


def emitted(package) -> set[type]:
    """The action types the modules of an engine package can emit, read from their source."""
    found: set[type] = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        tree = ast.parse(source(module))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner, method = node.func.value, node.func.attr
            if isinstance(owner, ast.Name) and owner.id == "self" and method == "emit":
                made = node.args[0]
                assert isinstance(made, ast.Call) and isinstance(made.func, ast.Name), \
                    f"{module.__name__}:{node.lineno} emits something other than a new action"
                found.add(getattr(module, made.func.id))
            elif isinstance(owner, ast.Name) and owner.id == "self" and method in SENDS:
                found.add(Send)
            elif isinstance(owner, ast.Attribute) and owner.attr == "_actions":
                what = node.args[0].id if node.args and isinstance(node.args[0], ast.Name) else None
                assert (module.__name__, what) in BULK, f"{module.__name__}:{node.lineno} adds to the outbox directly"
                found.add(BULK[(module.__name__, what)])
    return found


@pytest.mark.parametrize("engine, package", [(MasterEngine, master), (AgentEngine, agent),
                                             (SchedulerEngine, scheduler), (ExecutorEngine, executor)],
                         ids=["master", "agent", "scheduler", "executor"])
def test_each_engine_declares_exactly_the_actions_its_code_emits(engine, package):
    assert emitted(package) == engine.ACTIONS


def test_the_scheduler_status_loop_makes_callbacks():
    # the one bulk add (BULK) holds what scheduler_updates returns: Callbacks it makes itself
    loop = ast.parse(source(importlib.import_module("corral.engines.scheduler._status")))
    made = [n for n in ast.walk(loop) if isinstance(n, ast.Call) and ast.unparse(n) == "Callback.__new__(Callback)"]
    appended = [n for n in ast.walk(loop) if isinstance(n, ast.Call) and ast.unparse(n) == "callbacks.append(callback)"]
    assert made and appended
