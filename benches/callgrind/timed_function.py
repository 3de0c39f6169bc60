"""Instruction counts of one bench's timed function, for comparing builds on a loaded box.

Runs a pytest-benchmark test of `benches/` with a stand-in `benchmark` that calls the timed
function K times (mode `fn`) or never (mode `nofn`), each after the test's own setup. Run
both modes under callgrind; (fn - nofn) / K is one call of the timed function alone.

  valgrind --tool=callgrind python benches/callgrind/timed_function.py \
      SRC bench_allocator.py test_full_cycle '[1000, 100]' fn 2

SRC is the checkout whose benches/ to use (the installed corral is the build measured).
"""
from __future__ import annotations

import importlib.util
import json
import sys
import types
from typing import Any, Callable


class StandIn:
    """Enough of pytest-benchmark's fixture for the benches: calls, pedantic, stats."""

    def __init__(self, calls: int, run: bool) -> None:
        self.calls, self.run = calls, run
        self.group: str | None = None
        self.extra_info: dict[str, Any] = {}
        self.stats = types.SimpleNamespace(stats=types.SimpleNamespace(median=1.0))

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.pedantic(fn, args=args, kwargs=kwargs)

    def pedantic(self, fn: Callable[..., Any], args: tuple = (), kwargs: dict | None = None,
                 setup: Callable[[], Any] | None = None, **_rounds: Any) -> Any:
        result = None
        for _ in range(self.calls):
            call_args, call_kwargs = args, kwargs or {}
            if setup is not None:
                made = setup()
                if made:
                    call_args, call_kwargs = made
            if self.run:
                result = fn(*call_args, **call_kwargs)
        return result


def main() -> None:
    src, bench, test, params, mode, calls = sys.argv[1:7]
    sys.path.insert(0, f"{src}/benches")
    spec = importlib.util.spec_from_file_location("bench", f"{src}/benches/{bench}")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        getattr(module, test)(StandIn(int(calls), mode == "fn"), *json.loads(params))
    except (AssertionError, TypeError):
        if mode == "fn":  # without the timed calls, the test's checks of their result fail
            raise


if __name__ == "__main__":
    main()
