"""Benchmarks for the CRDT status store (notifyd.store).  Standalone: run

    .venv/bin/python benchmarks/bench_store.py

Each figure is printed with its target and, because the machine is noisy, with a ratio to a
naive baseline measured in the same run (a dict-of-dicts JSON store).
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notifyd.store import StatusStore, StoreState
from notifyd.store.convergence import measure_convergence
from notifyd.store.log import encode_snapshot
from notifyd.store.state import PageState
from notifyd.store.types import LWW, lww_merge

COMPONENTS = [
    ("api", "API"), ("db", "Database"), ("cdn", "CDN"), ("web", "Website"), ("auth", "Login"),
    ("dns", "DNS"), ("mail", "Email"), ("search", "Search"), ("billing", "Billing"), ("status", "Status"),
    ("push", "Push"), ("sms", "SMS"), ("files", "Files"), ("queue", "Queue"), ("cache", "Cache"),
    ("eu", "EU region"), ("us", "US region"), ("ap", "APAC region"), ("docs", "Docs"), ("app", "App"),
]  # fmt: skip
STATUSES = ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
NODES = ("region-a", "region-b", "region-c")
RESULTS: list[Any] = []


def report(name: str | dict[str, Any], value: str = "", target: str = "", vs: str = "") -> None:
    """A row: ``(name, value, target, vs)``, or a dict with a pass/fail verdict (benchmarks/run.py)."""
    if isinstance(name, dict):
        RESULTS.append(name)
        row = name
        print(f"  {row['name']:<34} {row['measured']:>18}   target {row['target']:<12} {row['ratio']}"
              f" (baseline {row['baseline']})", flush=True)  # fmt: skip
        return
    RESULTS.append((name, value, target, vs))
    print(f"  {name:<34} {value:>18}   target {target:<12} {vs}", flush=True)


def event(i: int, page: str, cid: str, name: str, status: str, when: datetime) -> dict[str, Any]:
    return {
        "event_id": f"evt-{i:08d}",
        "type": "component_status_changed",
        "page_id": page,
        "occurred_at": when,
        "priority": "normal",
        "notify": True,
        "component": {"id": cid, "name": name, "status": status},
    }


# -- merges ------------------------------------------------------------


def bench_merges(n: int = 200_000) -> None:
    rng = random.Random(1)
    base = 1_795_914_000_000 << 16
    deltas = []
    json_deltas = []
    for i in range(n):
        pid, (cid, name) = f"page-{rng.randrange(1000):04d}", rng.choice(COMPONENTS)
        reg = LWW(base + (i << 16), rng.choice(NODES), (name, rng.choice(STATUSES)))
        d = StoreState()
        page = d.pages[pid] = PageState()
        page.components[cid] = reg
        deltas.append(d)
        json_deltas.append(json.dumps({pid: {cid: [reg.hlc, reg.node, list(reg.value)]}}))

    state = StoreState()
    t = time.perf_counter()
    for d in deltas:
        state.merge_in(d)
    crdt = n / (time.perf_counter() - t)

    naive: dict[str, dict[str, list[Any]]] = {}
    t = time.perf_counter()
    for raw in json_deltas:
        for pid, comps in json.loads(raw).items():
            page_d = naive.setdefault(pid, {})
            for cid, reg in comps.items():
                cur = page_d.get(cid)
                if cur is None or (reg[0], reg[1]) > (cur[0], cur[1]):
                    page_d[cid] = reg
    baseline = n / (time.perf_counter() - t)
    report(
        "state merges/s (delta of 1 reg)", f"{crdt:,.0f}", ">= 100,000", f"{crdt / baseline:.2f}x naive json"
    )

    regs = [next(iter(next(iter(d.pages.values())).components.values())) for d in deltas]
    t = time.perf_counter()
    acc: LWW | None = None
    for reg in regs:
        acc = lww_merge(acc, reg)
    raw = n / (time.perf_counter() - t)
    report("register merges/s (lww_merge)", f"{raw:,.0f}", "-", "")


# -- writes ------------------------------------------------------------


def bench_writes(n: int = 50_000) -> None:
    rng = random.Random(2)
    when = datetime.now(UTC) - timedelta(hours=1)
    events = []
    for i in range(n):
        cid, name = rng.choice(COMPONENTS)
        events.append(event(i, f"page-{rng.randrange(1000):04d}", cid, name, rng.choice(STATUSES), when))
        when += timedelta(milliseconds=1)
    store = StatusStore.memory("region-a")
    t = time.perf_counter()
    for e in events:
        store.apply_event(e)
    mem = n / (time.perf_counter() - t)

    naive: dict[str, Any] = {}
    t = time.perf_counter()
    for e in events:  # the naive store: dedup set + dict-of-dicts + a JSON line per write
        if e["event_id"] in naive.setdefault("seen", {}):
            continue
        naive["seen"][e["event_id"]] = 1
        ts = e["occurred_at"].timestamp()
        page = naive.setdefault(e["page_id"], {})
        cur = page.get(e["component"]["id"])
        if cur is None or ts >= cur[0]:
            page[e["component"]["id"]] = [ts, e["component"]["name"], e["component"]["status"]]
        json.dumps(page[e["component"]["id"]])
    baseline = n / (time.perf_counter() - t)
    report("apply_event/s, in memory", f"{mem:,.0f}", "-", f"{mem / baseline:.2f}x naive dict")

    with tempfile.TemporaryDirectory() as d:
        for fsync in (False, True):
            count = n if not fsync else 5000
            with StatusStore.open(Path(d) / f"s{fsync}", "region-a", fsync=fsync) as s:
                t = time.perf_counter()
                for e in events[:count]:
                    s.apply_event(e)
                rate = count / (time.perf_counter() - t)
            report(f"apply_event/s, logged fsync={fsync}", f"{rate:,.0f}", "-", "")


# -- wire ------------------------------------------------------------


def bench_wire(intervals: int = 20, per_interval: int = 100) -> None:
    """1k updates/s over 50 pages, synced every 100 ms: payload bytes per register op carried."""
    rng = random.Random(3)
    a, b = StatusStore.memory("region-a"), StatusStore.memory("region-b")
    a.add_peer("region-b")
    b.receive_sync("region-a", a.sync_payload_for("region-b") or b"")  # initial full-state handshake
    a._buffer.ack("region-b", a._buffer.incarnation, a._buffer.seq)
    when = datetime.now(UTC) - timedelta(minutes=5)
    total = ops = writes = json_bytes = 0
    single = 0
    for k in range(intervals):
        for i in range(per_interval):
            cid, name = rng.choice(COMPONENTS[:8])
            a.apply_event(
                event(k * 1000 + i, f"page-{rng.randrange(50):02d}", cid, name, rng.choice(STATUSES), when)
            )
            when += timedelta(milliseconds=1)
            writes += 1
        pending = a._buffer.pending_for("region-b")
        assert pending is not None and pending[2] is not None
        group = pending[2]
        payload = a.sync_payload_for("region-b") or b""
        total += len(payload)
        ops += sum(len(p.components) for p in group.pages.values())
        json_bytes += len(
            json.dumps(
                {
                    "seen": {str(h): e for h, e in group.seen.items.items()},
                    "pages": {
                        pid: {c: [r.hlc, r.node, *r.value] for c, r in p.components.items()}
                        for pid, p in group.pages.items()
                    },
                }
            )
        )
        a.receive_ack("region-b", b.receive_sync("region-a", payload))
    one = StatusStore.memory("x")
    one.add_peer("y")
    one.receive_ack("y", StatusStore.memory("y").receive_sync("x", one.sync_payload_for("y") or b""))
    one.apply_event(event(1, "acme", "api", "API", "major_outage", datetime.now(UTC)))
    single = len(one.sync_payload_for("y") or b"")
    per_op = total / ops
    report(
        "wire bytes per op (100-op batches)",
        f"{per_op:.1f} B",
        "<= 24 B",
        f"{per_op / (json_bytes / ops):.2f}x json",
    )
    report("wire bytes per event written", f"{total / writes:.1f} B", "-", "incl. 8 B seen-set id")
    report("single-update sync message", f"{single} B", "-", "header + tables, unbatched")


# -- snapshot and load ------------------------------------------------------------


def bench_snapshot(pages: int = 1000) -> None:
    rng = random.Random(4)
    now = datetime.now(UTC)
    keys = pages * len(COMPONENTS)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s"
        # Three regions wrote the registers; the latest change of each is spread over the past week.
        stores = {n: StatusStore.open(path / n, n, fsync=False) for n in NODES}
        i = 0
        for p in range(pages):
            for cid, name in COMPONENTS:
                when = now - timedelta(milliseconds=rng.randrange(7 * 86_400_000))
                origin = stores[NODES[i % 3]]
                origin.apply_event(
                    event(i, f"page-{p:04d}", cid, name, rng.choices(STATUSES, [80, 8, 5, 4, 3])[0], when)
                )
                i += 1
        main = stores["region-a"]
        for n in NODES[1:]:
            main.receive_sync(n, stores[n].sync_payload_for("region-a") or b"")
        for s in stores.values():
            s.close()
        main = StatusStore.open(path / "region-a", "region-a", fsync=False)
        full = main.snapshot()
        state = main.export_state()
        main.close()
        assert state.live_keys() == keys
        regs_only = state.copy()
        regs_only.seen.items.clear()
        reg_bytes = len(encode_snapshot(regs_only, {"node": "region-a", "removed": []}))
        naive = len(
            json.dumps(
                {
                    pid: {c: [r.hlc, r.node, *r.value] for c, r in p.components.items()}
                    for pid, p in state.pages.items()
                }
            ).encode()
        )
        report(
            "snapshot bytes per live key",
            f"{reg_bytes / keys:.2f} B",
            "<= 8 B",
            f"{reg_bytes / naive:.3f}x json",
        )
        report("  ... incl. 7-day seen-set", f"{full / keys:.2f} B", "-", f"{len(state.seen)} event ids")

        times = []
        for _ in range(7):
            t = time.perf_counter()
            s = StatusStore.open(path / "region-a", "region-a", fsync=False)
            times.append(time.perf_counter() - t)
            s.close()
        t = time.perf_counter()
        json.loads(
            json.dumps({pid: {c: list(r) for c, r in p.components.items()} for pid, p in state.pages.items()})
        )
        naive_load = time.perf_counter() - t
        ms = statistics.median(times) * 1000
        report(
            f"load {keys // 1000}k keys (open, median)",
            f"{ms:.1f} ms",
            "<= 50 ms",
            f"{ms / 1000 / naive_load:.2f}x json dumps+loads (time)",
        )


# -- retention ------------------------------------------------------------


def bench_retention(days: int = 30, per_day: int = 10_000, pages: int = 200) -> None:
    """30 simulated days of 10k events a day: the compacted store's size levels off.

    Each day: 60% component changes, 40% incident events (created, three updates, resolved).
    The store compacts and snapshots once a simulated day, as ``maybe_compact`` would; the
    baseline is the same events in a store that never forgets (the store before compaction).
    """
    start = datetime.now(UTC) - timedelta(days=days)
    now = [start.timestamp()]
    rng = random.Random(6)
    forever = 10 * 365 * 86_400
    sizes: dict[int, int] = {}
    measured = {7, 14, 22, days}
    meta = {"node": "region-a", "removed": []}
    store = StatusStore.memory("region-a", clock=lambda: now[0])
    never = StatusStore.memory(
        "region-a",
        clock=lambda: now[0],
        event_id_ttl_s=forever,
        incident_retention_s=forever,
        tombstone_retention_s=forever,
    )
    i = 0
    open_incidents: list[tuple[str, str, int]] = []
    for day in range(days):
        for k in range(per_day):
            now[0] = start.timestamp() + day * 86_400 + k * (86_400 / per_day)
            when = datetime.fromtimestamp(now[0], UTC)
            i += 1
            if rng.random() < 0.6 or (not open_incidents and rng.random() < 0.5):
                cid, name = rng.choice(COMPONENTS)
                e = event(i, f"page-{rng.randrange(pages):03d}", cid, name, rng.choice(STATUSES), when)
            elif len(open_incidents) < 50 and (not open_incidents or rng.random() < 0.2):
                open_incidents.append((f"page-{rng.randrange(pages):03d}", f"inc-{i}", 0))
                e = incident(i, *open_incidents[-1][:2], "investigating", when)
            else:
                n = rng.randrange(len(open_incidents))
                page, iid, updates = open_incidents[n]
                status = "resolved" if updates >= 3 else "identified"
                e = incident(i, page, iid, status, when)
                if status == "resolved":
                    open_incidents.pop(n)
                else:
                    open_incidents[n] = (page, iid, updates + 1)
            store.apply_event(e)
            never.apply_event(e)
        store.compact()  # what maybe_compact does; the size is that of the snapshot it writes
        if day + 1 in measured:
            sizes[day + 1] = len(encode_snapshot(store.export_state(), meta))
    stats = store.stats
    t = time.perf_counter()
    peer = StatusStore.memory("region-b", clock=lambda: now[0])
    store.add_peer("region-b")
    parts = 0
    while (payload := store.sync_payload_for("region-b")) is not None:
        store.receive_ack("region-b", peer.receive_sync("region-a", payload))
        parts += 1
    sync_s = time.perf_counter() - t
    assert peer.export_state() == store.export_state()
    baseline = len(encode_snapshot(never.export_state(), meta))
    final, settled = sizes[days], sizes[22]
    # Bounded: after the retentions (7 days, then 14 for tombstones) the size stops growing.
    report(
        {
            "name": f"store snapshot after {days} days of {per_day // 1000}k events/day",
            "measured": f"{final / 1024:,.0f} KiB",
            "baseline": f"{baseline / 1024:,.0f} KiB never compacted",
            "ratio": f"{final / baseline:.2f}x; {final / settled:.2f}x its day 22",
            "target": "<= 1.15x its day 22",
            "ok": final <= 1.15 * settled,
        }
    )
    report("  ... by day (KiB)", " ".join(f"d{d}={b // 1024}" for d, b in sorted(sizes.items())), "-", "")
    report(
        "  ... what it holds",
        f"{stats['seen_ids']:,} ids",
        "-",
        f"{stats['incidents']} incidents of which {stats['tombstones']} tombstones",
    )
    report(
        f"full sync to a new peer after {days} days", f"{sync_s * 1000:,.0f} ms", "-", f"{parts} message(s)"
    )


def incident(i: int, page: str, iid: str, status: str, when: datetime) -> dict[str, Any]:
    return {
        "event_id": f"evt-{i:08d}",
        "type": "incident_resolved" if status == "resolved" else "incident_updated",
        "page_id": page,
        "occurred_at": when,
        "priority": "normal",
        "notify": True,
        "incident": {"id": iid, "title": "Database outage", "status": status, "impact": "major",
                     "message": f"Update {i}: we are looking into it", "components": ["api", "db"]},
    }  # fmt: skip


# -- convergence ------------------------------------------------------------


def bench_convergence(rate: int = 1000, seconds: float = 2.0) -> None:
    run = measure_convergence(rate=rate, seconds=seconds, pages=40, components=20, seed=5)
    p50, p99 = run.percentile(0.50), run.percentile(0.99)
    report("replication lag p50", f"{p50:.0f} ms", "-", f"converged={run.converged}")
    report("replication lag p99", f"{p99:.0f} ms", "<= 500 ms", f"{p99 / 100:.2f}x the 100 ms interval")
    report(
        "network",
        f"{run.network.bytes_sent / max(1, run.writes):.0f} B/write",
        "-",
        f"{run.network.dropped} dropped",
    )


def main(quick: bool = False, only: str | None = None) -> None:
    print("notifyd.store benchmarks")
    benches = {
        "merges": bench_merges,
        "writes": bench_writes,
        "wire": bench_wire,
        "snapshot": bench_snapshot,
        "retention": (lambda: bench_retention(per_day=1000)) if quick else bench_retention,
        "convergence": bench_convergence,
    }
    for name in only.split(",") if only else benches:
        benches[name]()


if __name__ == "__main__":
    main()
