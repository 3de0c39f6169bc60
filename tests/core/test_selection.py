"""Which implementation corral._core selected, and that both are loadable side by side."""
import os

import corral._core as core


def test_compiled_core_unless_disabled():
    # A broken build must not silently fall back to the pure-Python twin.
    if os.environ.get("CORRAL_NO_EXTENSIONS") == "1":
        assert core.CORE == "python"
    else:
        assert core.CORE == "cython"
        for module in (core.envelope, core.acks, core.timers, core.decoding, core.encoding, core.messages, core.relay):
            assert not module.__file__.endswith(".py"), module.__file__
        # the status path's message classes are C types (a class statement makes a heap type)
        heap_type = 1 << 9  # Py_TPFLAGS_HEAPTYPE
        for cls in (core.ExecutorStatusUpdate, core.StatusUpdateMessage, core.Updates, core.Acknowledge,
                    core.StatusUpdateAck, core.ExecutorStatusUpdateAck):
            assert not cls.__flags__ & heap_type, cls
        # compiled *with* the .pxd: extension types, no instance __dict__
        for obj in (core.Dispatcher(), core.AckTracker(), core.TimerQueue(),
                    core.decode(core.encode(1, 0, b"", b""))):
            assert not hasattr(obj, "__dict__"), type(obj)


def test_pure_twin_used_when_env_var_set():
    if os.environ.get("CORRAL_NO_EXTENSIONS") == "1":
        pure = core.load_pure()
        assert core.envelope is pure.envelope
        assert core.Dispatcher is pure.dispatch.Dispatcher
        assert core.AckTracker is pure.acks.AckTracker
        assert core.TimerQueue is pure.timers.TimerQueue
        assert core.envelope.__file__.endswith("envelope.py")
    else:
        assert core.Dispatcher is not core.load_pure().dispatch.Dispatcher


def test_load_pure_runs_the_py_sources():
    pure = core.load_pure()
    assert pure is not None and core.load_pure().acks is pure.acks  # loaded once
    for name in core.MODULES:
        module = getattr(pure, name)
        assert module.__file__.endswith(f"{name}.py")
        assert module.__name__ == f"corral._core._py.{name}"
    frame = pure.envelope.encode(3, 4, b"s", b"b")
    assert frame == core.encode(3, 4, b"s", b"b")  # same wire bytes from both builds
    assert pure.dispatch.DRAIN_PATH in (pure.dispatch.DrainPath.UNRESOLVED,
                                        pure.dispatch.DrainPath.PYZMQ)
