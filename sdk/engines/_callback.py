"""The engines' "run a user callback" action, `Callback` (the other actions are in
`corral.engines.base`): a C type in the compiled build, so that the scheduler driver's
status loop (`corral.engines.scheduler._status`) makes one per update as a struct.

One source for both builds: plain Python as is; compiled by Cython with _callback.pxd.
"""
from __future__ import annotations


class Callback:
    """An engine's action: run the user's callback `event` (an enum whose value is the
    method name) with `args`, off the I/O thread. A status update's callback also
    carries `ack`, the row that acknowledges it (agent id, task id, uuid; see the
    scheduler engine's `acknowledge_delivered`), None when the update is not to be
    acknowledged."""

    __slots__ = ("event", "args", "ack")

    def __init__(self, event, *args):
        self.event = event
        self.args = args
        self.ack = None

    def __repr__(self):
        return f"Callback({self.event.name}, {len(self.args)} args)"
