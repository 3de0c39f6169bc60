"""The clock behind every `now` of the runtime, the drivers and the daemons.

`monotonic_clock()` reads as seconds since the epoch but never steps: it is the wall
clock's time when the clock was made plus the monotonic time elapsed since. Every
deadline (engine timers and retries, the I/O loop's waits, sandbox GC, operator calls)
is computed from it, so a step of the wall clock (NTP, `date -s`) neither fires every
timer at once nor stalls them; and what an engine stamps, shows or keeps from the same
`now` (status update timestamps, /state times, the registry's "unreachable since")
still reads as a date. The price: a wall-clock step taken after the process started
shows in those times only once it restarts (the trade Erlang's runtime makes by default,
its "no time warp" mode). Wall time read directly, `time.time()`, serves only where a
date is shown that is no engine's `now` (the master's start time).

`PROCESS_CLOCK` is the one every runtime, driver and daemon of a process reads (one
basis for all the times a process stamps); tests inject their own.
"""
from __future__ import annotations

import time
from typing import Callable

from corral._core.timers import MonotonicClock

#: a source of `now`: seconds, never going back
Clock = Callable[[], float]


def monotonic_clock(wall: Clock = time.time) -> Clock:
    """A clock that starts at `wall()` (read once, now) and advances with the monotonic
    clock: a `corral._core.timers.MonotonicClock`, read by a C call in the compiled build."""
    return MonotonicClock(wall() - time.monotonic())


#: the clock of this process (see the module's docstring)
PROCESS_CLOCK: Clock = monotonic_clock()
