"""Each engine keeps at most 29 instance attributes: CPython 3.11 shares the keys of an
instance's attributes (and its specialised attribute reads use them) only up to that
many; past it every attribute read on the status path slows down (the agent engine had
30 once a runtime set its `batch`, and an unbatched update took 1.5% more instructions).
`batch` and `principal` are set in `Engine.__init__`, so they are counted here."""
from __future__ import annotations

import random

import pytest

from corral.engines.agent import AgentConfig, AgentEngine
from corral.engines.executor import ExecutorEngine
from corral.engines.master import MasterConfig, MasterEngine
from corral.engines.scheduler import SchedulerEngine
from corral.protos import corral_pb2 as pb

#: CPython 3.11's SHARED_KEYS_MAX_SIZE (30) less one: the 30th attribute unshares the keys
MAX_ATTRIBUTES = 29


@pytest.mark.parametrize("make", [
    lambda: AgentEngine(pb.AgentInfo(hostname="h"), "tcp://a", AgentConfig(), random.Random(1)),
    lambda: MasterEngine(pb.MasterInfo(id="m", hostname="h", port=1, transport="tcp://m"), MasterConfig()),
    lambda: SchedulerEngine(pb.FrameworkInfo(user="u", name="n"), "tcp://s"),
    lambda: ExecutorEngine("f", "e", "tcp://a", "tcp://e"),
], ids=["agent", "master", "scheduler", "executor"])
def test_engines_keep_few_enough_attributes_for_shared_keys(make):
    engine = make()
    assert len(vars(engine)) <= MAX_ATTRIBUTES, sorted(vars(engine))
