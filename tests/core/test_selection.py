"""Which build corral._core selected for every compiled module (the compiled modules, or
their pure-Python twins), and that the twins also load beside the compiled build."""
import importlib
import os

import corral._core as core
from corral._core.acks import AckTracker
from corral._core.envelope import Dispatcher, decode, encode
from corral._core.messages import (Acknowledge, ExecutorStatusUpdate, ExecutorStatusUpdateAck, StatusUpdateAck,
                                   StatusUpdateMessage, Updates)
from corral._core.timers import TimerQueue


def test_every_py_with_a_pxd_beside_it_is_a_compiled_module():
    assert {f"corral._core.{name}" for name in core.MODULES} <= set(core.COMPILED_MODULES)
    for name, source in core.COMPILED_MODULES.items():
        assert source.endswith(name.rpartition(".")[2] + ".py") and os.path.exists(source[:-3] + ".pxd")
        assert os.path.exists(source[:-3] + ".pyi"), f"{name} has no type stub"  # (installed with it)


def test_compiled_core_unless_disabled():
    # A broken build must not silently fall back to the pure-Python twin.
    if os.environ.get("CORRAL_NO_EXTENSIONS") == "1":
        assert core.CORE == "python"
    else:
        assert core.CORE == "cython"
        for name in core.COMPILED_MODULES:
            module = importlib.import_module(name)
            assert not module.__file__.endswith(".py"), module.__file__
        # the status path's message classes are C types (a class statement makes a heap type)
        heap_type = 1 << 9  # Py_TPFLAGS_HEAPTYPE
        for cls in (ExecutorStatusUpdate, StatusUpdateMessage, Updates, Acknowledge,
                    StatusUpdateAck, ExecutorStatusUpdateAck):
            assert not cls.__flags__ & heap_type, cls
        # compiled *with* the .pxd: extension types, no instance __dict__
        for obj in (Dispatcher(), AckTracker(), TimerQueue(),
                    decode(encode(1, 0, b"", b""))):
            assert not hasattr(obj, "__dict__"), type(obj)


def test_pure_twin_used_when_env_var_set():
    if os.environ.get("CORRAL_NO_EXTENSIONS") == "1":
        for name, source in core.COMPILED_MODULES.items():
            module = importlib.import_module(name)
            assert module.__name__ == name and module.__file__ == source  # the .py, under its own name
        assert Dispatcher.__module__ == "corral._core.envelope"
    else:
        assert Dispatcher is not core.load_pure().envelope.Dispatcher


def test_load_pure_runs_the_py_sources():
    pure = core.load_pure()
    assert pure is not None and core.load_pure().acks is pure.acks  # loaded once
    for name in core.MODULES:
        module = getattr(pure, name)
        assert module.__file__.endswith(f"{name}.py")
        assert module.__name__ == f"corral._core._py.{name}"
    frame = pure.envelope.encode(3, 4, b"s", b"b")
    assert frame == encode(3, 4, b"s", b"b")  # same wire bytes from both builds
    assert pure.envelope.DRAIN_PATH in (pure.envelope.DrainPath.UNRESOLVED,
                                        pure.envelope.DrainPath.PYZMQ)
