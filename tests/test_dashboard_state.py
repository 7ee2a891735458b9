"""What the dashboard reads, kept in Redis: throughput buckets, latency histograms, circuit
snapshots, the quarantine index and the retry backlog."""

from __future__ import annotations

import time

from dramatiq import Message

from notifyd.runtime.settings import PRIORITIES
from notifyd.state import circuits, quarantine, throughput
from notifyd.state.queues import retry_backlog

#: A bucket boundary a little ahead of now: buckets expire at an absolute time, so they must be recent.
T0 = float(throughput.bucket_start(time.time()) + throughput.BUCKET_S)


def test_a_batch_adds_to_its_lane_and_bucket_and_the_series_reads_it_back_in_order(runtime):
    rt = runtime()
    throughput.record(
        rt.client, rt.keys, "critical", {"delivered": 40, "retrying": 3}, latency_s=0.05, at=T0 + 1
    )
    throughput.record(
        rt.client, rt.keys, "critical", {"delivered": 10, "failed": 1}, latency_s=0.05, at=T0 + 5
    )
    throughput.record(rt.client, rt.keys, "low", {"delivered": 7}, latency_s=2.0, at=T0 + 12)
    view = throughput.read(rt.client, rt.keys, PRIORITIES, now=T0 + 15)
    assert view["start"] == T0 + 10 - throughput.WINDOW_S
    lanes = {lane["lane"]: lane for lane in view["lanes"]}
    assert lanes["critical"]["delivered"][-2:] == [50, 0]
    assert (lanes["critical"]["retrying"][-2], lanes["critical"]["failed"][-2]) == (3, 1)
    assert lanes["low"]["delivered"][-2:] == [0, 7]
    assert sum(lanes["high"]["delivered"]) == 0
    # The last 10 s or so: both buckets over the 15 s they cover.
    assert view["delivered_per_s"] == round(57 / 15, 2)


def test_latency_percentiles_come_from_the_histogram_to_within_one_step(runtime):
    rt = runtime()
    for _ in range(98):
        throughput.record(rt.client, rt.keys, "normal", {"delivered": 1}, latency_s=0.040, at=T0)
    throughput.record(rt.client, rt.keys, "normal", {"delivered": 2}, latency_s=3.0, at=T0)
    view = throughput.read(rt.client, rt.keys, PRIORITIES, now=T0 + 1)
    normal = next(lane for lane in view["lanes"] if lane["lane"] == "normal")
    p50, p99 = normal["latency_ms"]["p50"], normal["latency_ms"]["p99"]
    assert 40 <= p50 < 40 * 1.19 and 3000 <= p99 < 3000 * 1.19
    assert view["window_latency_ms"] == normal["latency_ms"]
    assert view["latency_ms"]["p99"][-1] == p99 and view["latency_ms"]["p50"][0] is None


def test_a_bucket_expires_after_the_window(runtime):
    rt = runtime()
    now = time.time()
    throughput.record(rt.client, rt.keys, "high", {"delivered": 1}, latency_s=0.1, at=now)
    ttl = rt.client.ttl(rt.keys.throughput(throughput.bucket_start(now)))
    assert throughput.WINDOW_S < ttl <= throughput.KEEP_S + throughput.BUCKET_S


def test_circuit_snapshots_merge_across_workers_and_a_silent_worker_drops_out(runtime):
    rt = runtime()
    now = time.time()
    host = "https://hooks.example.com:443"
    circuits.publish(rt.client, rt.keys, "w1", [circuits.OpenCircuit("webhook", host, "open", 20.0)], at=now)
    circuits.publish(
        rt.client, rt.keys, "w2", [circuits.OpenCircuit("webhook", host, "half_open", 0.0)], at=now
    )
    circuits.publish(
        rt.client, rt.keys, "dead", [circuits.OpenCircuit("sms", "twilio", "open", 9.0)], at=now - 60
    )
    view = circuits.read(rt.client, rt.keys, now=now)
    assert view["workers_reporting"] == 2
    assert view["circuits"] == [
        {"channel": "webhook", "key": host, "state": "open", "retry_in_s": 20.0, "workers": 2}
    ]
    assert rt.client.hkeys(rt.keys.circuits()) and b"dead" not in rt.client.hkeys(rt.keys.circuits())
    circuits.withdraw(rt.client, rt.keys, "w1")
    assert circuits.read(rt.client, rt.keys, now=now)["circuits"][0]["workers"] == 1


def test_the_quarantine_index_shows_only_subscribers_still_quarantined_and_never_a_url_path(runtime):
    rt = runtime()
    subs = [
        rt.subscribers.add(
            "acme", {"channel": "webhook", "target": f"https://hooks.example.com/T{i}/secret"}
        ).subscriber
        for i in range(3)
    ]
    for sub in subs:
        rt.subscribers.disable("acme", sub.seq, "quarantined")
    quarantine.note(rt.client, rt.keys, subs[:2], at=T0)
    quarantine.note(rt.client, rt.keys, subs[2:], at=T0 + 5)
    rt.subscribers.reactivate("acme", subs[0].id)
    listed = quarantine.read(rt.client, rt.keys, rt.subscribers)
    assert [q["subscriber_id"] for q in listed] == [subs[2].id, subs[1].id]
    assert {q["endpoint"] for q in listed} == {"https://hooks.example.com"}
    assert rt.client.zcard(rt.keys.quarantined()) == 2  # the reactivated one was dropped from the index


def test_the_retry_backlog_counts_delayed_deliveries_by_when_they_come_due(runtime):
    rt = runtime()
    lane = "normal"

    def delayed(seqs: list[int], delay_ms: int) -> None:
        message: Message = Message(
            queue_name=rt.keys.queue_name(lane),
            actor_name=f"retry_{lane}",
            args=("ev-1", seqs, 2),
            kwargs={},
            options={},
        )
        rt.broker.enqueue(message, delay=delay_ms)

    delayed([1, 2, 3], 30_000)
    delayed([4], 45_000)
    delayed([5, 6], 600_000)
    view = retry_backlog(rt.client, rt.keys, now=time.time())
    normal = next(entry for entry in view["lanes"] if entry["lane"] == lane)
    assert view["buckets"][1] == "< 1 min" and view["buckets"][3] == "5-15 min"
    assert normal["deliveries"] == [0, 4, 0, 2, 0, 0]
    assert normal["messages"] == [0, 2, 0, 1, 0, 0]
    assert not view["truncated"]
