"""The chaos run, small: workers SIGKILLed, Valkey crashed and restarted from its AOF, and every
Redis connection cut, each after progress was seen; every delivery still ends delivered.

The 100k run is ``benchmarks/run.py --only chaos`` (tests/support/chaos.py does both).
"""

from __future__ import annotations

import pytest

from tests.support.chaos import run_chaos

SUBSCRIBERS = 2000
WORKERS = 2
#: Sends each worker may have in flight: what a fault can leave sent but not recorded.
WINDOW = 32


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_fanout_survives_sigkilled_workers_a_valkey_crash_and_cut_connections(tmp_path):
    report = run_chaos(
        tmp_path,
        subscribers=SUBSCRIBERS,
        kills=2,
        drops=5,
        workers=WORKERS,
        shard_size=200,
        dispatch_window=WINDOW,
    )
    assert (report.kills, report.drops, report.restarts) == (2, 5, 1)
    # Each fault landed mid fan-out, after more progress than the one before.
    progress = [n for _, n in report.faults_at]
    assert progress == sorted(progress) and progress[0] > 0 and progress[-1] < SUBSCRIBERS
    assert report.delivered == SUBSCRIBERS
    assert report.distinct == SUBSCRIBERS, "a subscriber never heard the event"
    # Sent again only what was in flight at a fault: at most every worker's window per fault.
    assert report.duplicates <= report.max_duplicates, report
