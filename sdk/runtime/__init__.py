"""The runtime layer, between the engines and the SDK: what runs an engine for real.

`loop` (the `Runtime`: one engine fed from the transport and the clock, its actions
performed), `driver` (what the scheduler and executor drivers share: the runtime, the
callback thread, `DriverStatus`) and `detector` (finding the leading master).
"""
from corral.runtime.loop import GC_YOUNG_THRESHOLD, Runtime

__all__ = ["GC_YOUNG_THRESHOLD", "Runtime"]
