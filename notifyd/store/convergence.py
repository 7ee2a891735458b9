"""How long replicas take to see each other's writes: N replicas, real threads, a lossy network.

The convergence test and ``benchmarks/bench_store.py`` both run this, so the
figure the benchmark reports is the one the test holds to its bound.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from notifyd.store.network import LossyNetwork, NetworkStats
from notifyd.store.state import StoreState
from notifyd.store.store import StatusStore
from notifyd.store.sync import Replicator

STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage")


@dataclass
class ConvergenceRun:
    converged: bool
    #: One lag per (write, other replica): from the write to that replica holding it or something newer.
    lags_ms: list[float]
    writes: int
    live_keys: int
    network: NetworkStats

    def percentile(self, q: float) -> float:
        ordered = sorted(self.lags_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def measure_convergence(
    *,
    nodes: tuple[str, ...] = ("region-a", "region-b", "region-c"),
    rate: int = 1000,
    seconds: float = 2.0,
    pages: int = 40,
    components: int = 7,
    interval_s: float = 0.1,
    seed: int = 11,
    settle_s: float = 5.0,
) -> ConvergenceRun:
    """Write ``rate`` component updates a second, round-robin over the replicas, then wait up to
    ``settle_s`` for every replica to hold the same state."""
    net = LossyNetwork(drop=0.05, duplicate=0.02, reorder=0.05, delay_s=(0.002, 0.02), seed=seed).start()
    stores = {n: StatusStore.memory(n) for n in nodes}
    arrivals: dict[str, dict[tuple[str, str], list[tuple[float, int]]]] = {
        n: defaultdict(list) for n in nodes
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
    replicators = [
        Replicator(s, net.endpoint(n), peers=list(nodes), interval_s=interval_s).start()
        for n, s in stores.items()
    ]
    writes: list[tuple[str, tuple[str, str], int, float]] = []
    try:
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            origin = nodes[i % len(nodes)]
            key = (f"page-{i % pages:02d}", f"comp-{i % components}")
            t0 = time.monotonic()
            result = stores[origin].apply_event(
                {
                    "event_id": f"evt-{i}",
                    "type": "component_status_changed",
                    "page_id": key[0],
                    "occurred_at": datetime.now(UTC),
                    "priority": "normal",
                    "notify": True,
                    "component": {
                        "id": key[1],
                        "name": key[1].upper(),
                        "status": STATUSES[i % len(STATUSES)],
                    },
                }
            )
            if result.changed or not result.stale:
                writes.append((origin, key, result.hlc, t0))
            if i % 20 == 19 and (ahead := start + (i + 1) / rate - time.monotonic()) > 0:
                time.sleep(ahead)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and not _equal(stores):
            time.sleep(0.02)
    finally:
        for r in replicators:
            r.stop()
        net.stop()
    lags: list[float] = []
    for origin, key, hlc, t0 in writes:
        for node in nodes:
            if node == origin:
                continue
            # None: a newer write, which it never needed to see this one under, arrived first.
            seen_at = next((t for t, h in arrivals[node][key] if h >= hlc), None)
            lags.append(max(0.0, (seen_at if seen_at is not None else t0) - t0) * 1000)
    states = [s.export_state() for s in stores.values()]
    return ConvergenceRun(_equal(stores), lags, len(writes), states[0].live_keys(), net.stats)


def _equal(stores: dict[str, StatusStore]) -> bool:
    states = [s.export_state() for s in stores.values()]
    return all(state == states[0] for state in states[1:])
