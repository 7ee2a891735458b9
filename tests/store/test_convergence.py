"""Three replicas, real threads and a lossy network: ~1k updates/s for ~2 s converge.

How fast they converge (p99 lag) is a figure for `make bench`, not a test's assert.
"""

from __future__ import annotations

import pytest

from notifyd.store.convergence import measure_convergence


@pytest.mark.slow
def test_three_replicas_converge_on_a_lossy_network() -> None:
    run = measure_convergence(rate=1000, seconds=2.0, pages=40, components=7, interval_s=0.1, seed=11)
    assert run.converged, "replicas did not converge within 5 s"
    assert run.live_keys == 40 * 7
    # Every write reached every other replica: a lag was measured for each (write, replica) pair.
    assert run.lags_ms and all(lag >= 0 for lag in run.lags_ms)
