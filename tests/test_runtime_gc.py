"""The collector threshold every corral I/O loop sets (`corral.runtime.loop.tune_gc`)."""
from __future__ import annotations

import gc

import pytest

from corral.runtime.loop import GC_YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restore_threshold():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_young_threshold_is_raised_and_the_others_kept(restore_threshold):
    gc.set_threshold(700, 11, 12)
    tune_gc()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 11, 12)


def test_a_higher_threshold_a_user_set_is_kept(restore_threshold):
    gc.set_threshold(GC_YOUNG_THRESHOLD * 2, 10, 10)
    tune_gc()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD * 2, 10, 10)
