"""A worker process freezes what start-up built and collects its young objects less often."""

from __future__ import annotations

import gc

from notifyd.runtime.worker import GC_THRESHOLDS, settle_gc


def test_settling_the_collector_freezes_start_up_objects_and_raises_its_thresholds():
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 0  # this process's modules and objects so far
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
