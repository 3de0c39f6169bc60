"""Shared bench fixtures: both _core implementations in one run, and a summary of the
compiled/pure (and drain/raw pyzmq) ratios at the end of the run."""
from __future__ import annotations

import types

import pytest

import corral._core as core
from corral._core import acks, decoding, encoding, envelope, send, timers

_RESULTS: dict[tuple[str, str], float] = {}  # (group, variant) -> median seconds per op


def core_impls() -> dict[str, types.SimpleNamespace]:
    """{"cython": compiled modules (when built), "python": the pure-Python twin}."""
    impls = {"python": core.load_pure()}
    if core.CORE == "cython":
        impls["cython"] = types.SimpleNamespace(envelope=envelope, send=send, acks=acks, timers=timers,
                                                decoding=decoding, encoding=encoding)
    return impls


@pytest.fixture(params=["cython", "python"])
def impl(request):
    impls = core_impls()
    if request.param not in impls:
        pytest.skip("compiled _core not built (or CORRAL_NO_EXTENSIONS=1)")
    return request.param, impls[request.param]


@pytest.fixture
def zmq_sink():
    """A connected PUSH -> PULL pair over tcp loopback (unbounded queues)."""
    import zmq

    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 0)
    pull.setsockopt(zmq.LINGER, 0)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(f"tcp://127.0.0.1:{port}")
    yield push, pull
    push.close()
    pull.close()


@pytest.fixture
def record():
    """record(benchmark, group, variant, ops_per_round): keep the median time per op."""
    def _record(benchmark, group, variant, ops):
        _RESULTS[(group, variant)] = benchmark.stats.stats.median / ops
    return _record


def _ratio_lines() -> list[str]:
    lines = []
    groups = sorted({group for group, _ in _RESULTS})
    for group in groups:
        variants = {v: t for (g, v), t in _RESULTS.items() if g == group}
        cells = ", ".join(f"{v} {1e9 * t:,.0f} ns/op ({1 / t / 1e6:.2f} M/s)"
                          for v, t in sorted(variants.items()))
        if "cython" in variants and "python" in variants:
            cells += f"; cython/python speed-up {variants['python'] / variants['cython']:.2f}x"
        if "drain" in variants and "raw_recv" in variants:
            cells += f"; drain/raw throughput {variants['raw_recv'] / variants['drain']:.2f}x"
        lines.append(f"{group}: {cells}")
    return lines


def pytest_terminal_summary(terminalreporter):
    if _RESULTS:
        terminalreporter.section("corral._core ratios (same run)")
        for line in _ratio_lines():
            terminalreporter.write_line(line)
