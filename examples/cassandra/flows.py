"""Multi-step node procedures (joining, replacing, leaving, repairing) as generators.

A flow is a generator that yields what it waits for and is resumed with the outcome:
`Sleep(seconds)` resumes with None; `Ask(address, verb, args, timeout)` sends
`(verb, rid, *args)` and resumes with the REPLY's payload, or `TIMED_OUT`; `Gather`
asks several at once and resumes with their outcomes in order. The node drives flows
from its messages and timers, so they stay sans I/O and deterministic under a fake
clock and network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Sequence

from corral.examples.cassandra.messages import Verb


class _TimedOut:
    def __repr__(self) -> str:
        return "TIMED_OUT"


#: what an `Ask` resumes with when no reply came in time
TIMED_OUT: Any = _TimedOut()


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Ask:
    address: str
    verb: Verb
    args: tuple[Any, ...]
    timeout: float


@dataclass(frozen=True)
class Gather:
    asks: Sequence[Ask]


Wait = Sleep | Ask | Gather
Flow = Generator[Wait, Any, Any]


class FlowError(RuntimeError):
    """A flow cannot go on (a source that never answers, a replica set too small)."""
