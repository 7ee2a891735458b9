"""Three replicas, real threads and a lossy network: ~1k updates/s for ~2 s must converge quickly."""

from __future__ import annotations

from notifyd.store.convergence import measure_convergence


def test_three_replicas_converge_with_p99_lag_under_500_ms_on_a_lossy_network() -> None:
    run = measure_convergence(rate=1000, seconds=2.0, pages=40, components=7, interval_s=0.1, seed=11)
    assert run.converged, "replicas did not converge within 5 s"
    assert run.live_keys == 40 * 7
    p50, p99 = run.percentile(0.50), run.percentile(0.99)
    print(
        f"\nconvergence lag over {len(run.lags_ms)} (write, replica) pairs: p50={p50:.0f} ms p99={p99:.0f} ms"
    )
    assert p99 <= 500, f"p99 lag {p99:.0f} ms (p50 {p50:.0f} ms)"
