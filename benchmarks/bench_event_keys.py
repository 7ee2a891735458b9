"""What keeping an event under its page costs in Redis: bytes per tracked delivery with the
event's keys under its page (``p:<page>:dl:<id>:<bucket>``, issue 10) against the global layout
kept for events accepted before (``dl:<id>:<bucket>``), measured in the same run.

    NOTIFYD_BENCH_REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python benchmarks/bench_event_keys.py

It writes N delivered records per event through the tracker (track.lua), sums ``MEMORY USAGE``
of the event's tracking buckets, and deletes its own namespace at the end.
"""

from __future__ import annotations

import argparse
import os
import uuid

import redis

from notifyd.state.keys import Keys, event_ref
from notifyd.state.tracking import Record, Tracker, Update

REDIS_URL = os.environ.get("NOTIFYD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")


def bytes_per_delivery(client: redis.Redis, keys: Keys, ref: str, n: int) -> float:
    tracker = Tracker(client, keys, ttl_s=3600)
    client.hset(keys.event(ref), mapping={"shards_total": 1, "accepted_at": 0})
    for first in range(0, n, 1000):
        seqs = range(first, min(n, first + 1000))
        tracker.plan(ref, [Update(s, Record("pending", 0, 1)) for s in seqs])
        tracker.record(ref, [Update(s, Record("delivered", 1, 2)) for s in seqs])
    prefix = keys.deliveries(ref, 0).removesuffix("0")
    used = sum(client.memory_usage(k) or 0 for k in client.scan_iter(match=prefix + "*", count=1000))
    return used / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-N", type=int, default=20_000)
    args = parser.parse_args()
    client = redis.Redis.from_url(REDIS_URL)
    keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
    try:
        per_page = bytes_per_delivery(client, keys, event_ref("status-page-acme", "inc-42-update-3"), args.N)
        legacy = bytes_per_delivery(client, keys, "inc-42-update-3", args.N)
    finally:
        for key in client.scan_iter(match=f"{keys.ns}:*", count=1000):
            client.delete(key)
    print(f"Redis per tracked delivery, N={args.N:,}")
    print(f"  event under its page (p:<page>:dl:<id>:<bucket>): {per_page:.2f} B")
    print(f"  global layout, same run (dl:<id>:<bucket>):        {legacy:.2f} B")
    print(f"  ratio: {per_page / legacy:.3f}x (target: <= 100 B per delivery, everything included)")


if __name__ == "__main__":
    main()
