"""Delivery tracking stays compact and its counters follow every transition exactly once."""

from __future__ import annotations

from notifyd.state.keys import event_ref
from notifyd.state.tracking import Record, Update


def test_record_round_trips_through_its_compact_form():
    record = Record("retrying", 3, 95, "HTTP 500")
    assert record.encode() == "r3,95|HTTP 500"
    assert Record.decode(record.encode()) == record


def test_tracking_costs_under_100_bytes_of_redis_memory_per_delivery(runtime):
    rt = runtime()
    n = 20_000
    ref = event_ref("acme", "mem")  # an event's keys under its page (see keys.event_ref)
    rt.client.hset(rt.keys.event(ref), mapping={"shards_total": 1, "accepted_at": 0})
    for first in range(0, n, 1000):
        rt.tracker.plan(ref, [Update(s, Record("pending", 0, 1)) for s in range(first, first + 1000)])
        rt.tracker.record(
            ref, [Update(s, Record("delivered", 1, 2)) for s in range(first, first + 1000) if s % 10]
        )
        rt.tracker.record(
            ref,
            [
                Update(s, Record("failed", 9, 3600, "HTTP 503 Service Unavailable"))
                for s in range(first, first + 1000, 10)
            ],
        )
    used = sum(
        rt.client.memory_usage(k, samples=0) or 0
        for k in rt.client.scan_iter(match=rt.keys.deliveries(ref, 0).removesuffix("0") + "*", count=1000)
    )
    assert used / n <= 100, f"{used / n:.1f} bytes per tracked delivery"
    counts = rt.tracker.summary(ref)["counts"]
    assert (counts["planned"], counts["delivered"], counts["failed"]) == (n, n - n // 10, n // 10)


def test_final_records_never_change_and_a_replayed_plan_counts_nothing(runtime):
    rt = runtime()
    rt.client.hset(rt.keys.event("e"), mapping={"shards_total": 1})
    rt.tracker.plan("e", [Update(1, Record("pending", 0, 0))])
    rt.tracker.record("e", [Update(1, Record("delivered", 1, 1))])
    previous = rt.tracker.plan("e", [Update(1, Record("pending", 0, 2))])
    assert previous[0].status == "delivered"
    rt.tracker.record("e", [Update(1, Record("failed", 2, 3, "late duplicate"))])
    assert rt.tracker.records("e", [1])[1].status == "delivered"
    counts = rt.tracker.summary("e")["counts"]
    assert (counts["planned"], counts["delivered"], counts["failed"]) == (1, 1, 0)


def test_event_is_done_only_when_every_shard_ran_and_nothing_is_pending(runtime):
    rt = runtime()
    rt.client.hset(rt.keys.event("d"), mapping={"shards_total": 2})
    rt.tracker.plan("d", [Update(1, Record("pending", 0, 0))])
    rt.tracker.record("d", [Update(1, Record("delivered", 1, 0))])
    rt.tracker.shard_done("d", 0)
    rt.tracker.shard_done("d", 0)  # a re-run shard counts once
    assert rt.tracker.summary("d")["state"] == "fanning_out"
    rt.tracker.shard_done("d", 1)
    assert rt.tracker.summary("d")["state"] == "done"
