"""corral's compiled modules, and the one rule that selects them or their pure-Python twins.

Every corral module that has a `.pxd` beside its `.py` is compiled by setup.py (Cython's
pure-Python mode: the `.py` is the one source, the `.pxd` adds C types). Most of them are
here, the generic machinery of the hot path: the envelope codec and the dispatch
table (`envelope`), the send path (`send`, `libzmq`), the ack tracker and its
memory of recent uuids (`acks`), timers on one deadline heap (`timers`, `heap`), the
status path's codec with its id caches (`decoding`, `encoding`) and message classes
(`messages`). Each engine's own status-path loop and task records sit beside the engine
(`corral.engines.*._status`). Import names from the modules themselves, e.g.
``from corral._core.acks import AckTracker``; each has a `.pyi` stub.

Selection happens once, when this package is imported (`corral` imports it first): the
compiled modules are used unless ``CORRAL_NO_EXTENSIONS=1`` is set or any of them is not
compiled; otherwise an import hook loads every compiled module's `.py` instead, under
its own name. ``CORE`` says which: ``"cython"`` or ``"python"``.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types

#: corral's installed package directory (the parent of this one)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compiled_modules() -> dict[str, str]:
    """Every module setup.py compiles, by name: its `.py` source path."""
    modules = {}
    for folder, _dirs, files in os.walk(_ROOT):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext == ".pxd" and stem + ".py" in files:
                parts = os.path.relpath(os.path.join(folder, stem), _ROOT).split(os.sep)
                modules[".".join(["corral", *parts])] = os.path.join(folder, stem + ".py")
    return modules


def _all_compiled(modules: dict[str, str]) -> bool:
    return all(any(os.path.exists(source[:-3] + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)
               for source in modules.values())


class _PureTwins:
    """An import hook (a meta path finder) that imports each compiled module from its
    `.py` source, ahead of the extension."""

    def __init__(self, sources: dict[str, str]) -> None:
        self._sources = sources

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        source = self._sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


#: every compiled module: name -> `.py` source
COMPILED_MODULES = _compiled_modules()
CORE = "cython" if os.environ.get("CORRAL_NO_EXTENSIONS") != "1" and _all_compiled(COMPILED_MODULES) else "python"
if CORE == "python" and not any(isinstance(f, _PureTwins) for f in sys.meta_path):
    sys.meta_path.insert(0, _PureTwins(COMPILED_MODULES))

#: this package's modules, each after those it imports (`load_pure`)
MODULES = ("decoding", "encoding", "messages", "libzmq", "envelope", "send", "heap", "acks", "timers")
_PURE_PACKAGE = __name__ + "._py"


def load_pure() -> types.SimpleNamespace:
    """This package's pure-Python twins beside the modules in use, to compare the two
    builds (tests and benches): each `.py` source loaded once more, as plain Python, as
    `corral._core._py.NAME`. Returns a namespace with one attribute per module."""
    package = sys.modules.get(_PURE_PACKAGE)
    if package is None:
        package = types.ModuleType(_PURE_PACKAGE, "pure-Python twins of corral._core")
        package.__path__ = []  # a namespace for the twins; nothing is found through it
        sys.modules[_PURE_PACKAGE] = package
    here = os.path.dirname(os.path.abspath(__file__))
    modules = {}
    for name in MODULES:
        qualified = f"{_PURE_PACKAGE}.{name}"
        module = sys.modules.get(qualified)
        if module is None:
            spec = importlib.util.spec_from_file_location(qualified, os.path.join(here, name + ".py"))
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[qualified] = module
            spec.loader.exec_module(module)
            setattr(package, name, module)
        modules[name] = module
    return types.SimpleNamespace(**modules)
