"""Three replicas, real threads and a lossy network: ~1k updates/s for ~2 s must converge quickly."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

from notifyd.store import LossyNetwork, Replicator, StatusStore, StoreState

NODES = ("region-a", "region-b", "region-c")
STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_three_replicas_converge_with_p99_lag_under_500_ms_on_a_lossy_network() -> None:
    net = LossyNetwork(drop=0.05, duplicate=0.02, reorder=0.05, delay_s=(0.002, 0.02), seed=11).start()
    stores = {n: StatusStore.memory(n) for n in NODES}
    arrivals: dict[str, dict[tuple[str, str], list[tuple[float, int]]]] = {
        n: defaultdict(list) for n in NODES
    }
    lock = threading.Lock()

    def listener_for(node: str):  # type: ignore[no-untyped-def]
        def on_change(delta: StoreState, origin: str | None) -> None:
            now = time.monotonic()
            with lock:
                for pid, page in delta.pages.items():
                    for cid, reg in page.components.items():
                        arrivals[node][(pid, cid)].append((now, reg.hlc))

        return on_change

    for node, store in stores.items():
        store.add_listener(listener_for(node))
    reps = [
        Replicator(s, net.endpoint(n), peers=list(NODES), interval_s=0.1).start() for n, s in stores.items()
    ]
    writes: list[tuple[str, tuple[str, str], int, float]] = []
    try:
        rate, seconds = 1000, 2.0
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            origin = NODES[i % 3]
            key = (f"page-{i % 40:02d}", f"comp-{i % 7}")
            event = {
                "event_id": f"evt-{i}",
                "type": "component_status_changed",
                "page_id": key[0],
                "occurred_at": datetime.now(UTC),
                "priority": "normal",
                "notify": True,
                "component": {"id": key[1], "name": key[1].upper(), "status": STATUSES[i % 4]},
            }
            t0 = time.monotonic()
            result = stores[origin].apply_event(event)
            if result.changed or not result.stale:
                writes.append((origin, key, result.hlc, t0))
            if i % 20 == 19 and (ahead := start + (i + 1) / rate - time.monotonic()) > 0:
                time.sleep(ahead)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = [s.export_state() for s in stores.values()]
            if states[0] == states[1] == states[2]:
                break
            time.sleep(0.05)
    finally:
        for r in reps:
            r.stop()
        net.stop()
    states = [s.export_state() for s in stores.values()]
    assert states[0] == states[1] == states[2], "replicas did not converge within 5 s"
    assert states[0].live_keys() == 40 * 7

    lags: list[float] = []
    for origin, key, hlc, t0 in writes:
        for node in NODES:
            if node == origin:
                continue
            seen_at = next((t for t, h in arrivals[node][key] if h >= hlc), None)
            if seen_at is None:  # a newer write it never needed to see arrived before it was made
                seen_at = t0
            lags.append(max(0.0, seen_at - t0))
    p50, p99 = _percentile(lags, 0.50) * 1000, _percentile(lags, 0.99) * 1000
    print(f"\nconvergence lag over {len(lags)} (write, replica) pairs: p50={p50:.0f} ms p99={p99:.0f} ms")
    assert p99 <= 500, f"p99 lag {p99:.0f} ms (p50 {p50:.0f} ms)"
