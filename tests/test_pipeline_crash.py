"""Kill a worker mid-shard: the shard runs again and resends nothing already delivered."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from notifyd.ids import delivery_id
from tests.support.events import incident_event
from tests.support.sink import Reply
from tests.support.wait import wait_done, wait_until


@pytest.mark.slow
def test_killed_worker_shard_reruns_without_resending_what_was_delivered(runtime, sink, start_worker):
    rt = runtime(shard_size=300, heartbeat_timeout_ms=2000, webhook_concurrency=20, host_concurrency=20)
    subs = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/w/{i}"}).subscriber
        for i in range(300)
    ]
    for i in range(300):
        sink.replies[f"/w/{i}"] = Reply(200, delay_s=0.1)
    s = rt.settings
    env = {
        **os.environ,
        "NOTIFYD_REDIS_URL": rt.url,
        "NOTIFYD_NAMESPACE": s.namespace,
        "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
        "NOTIFYD_SHARD_SIZE": "300",
        "NOTIFYD_HEARTBEAT_TIMEOUT_MS": "2000",
        "NOTIFYD_WEBHOOK_CONCURRENCY": "20",
        "NOTIFYD_HOST_CONCURRENCY": "20",
        "NOTIFYD_POLL_TIMEOUT_MS": "20",
        "NOTIFYD_DATA_DIR": str(s.data_dir),
    }
    victim = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "worker", "--threads", "2"], env=env, stderr=subprocess.DEVNULL
    )
    event = incident_event()
    rt.publisher.publish(event)
    try:
        # Kill it once at least one chunk was recorded but the shard is far from done.
        assert wait_until(
            lambda: rt.tracker.summary(event["event_id"])["counts"]["delivered"] >= 100, timeout=30
        )
        time.sleep(0.3)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    records = rt.tracker.records(event["event_id"], [sub.seq for sub in subs])
    delivered_before = {seq for seq, r in records.items() if r.status == "delivered"}
    assert 100 <= len(delivered_before) < 300

    start_worker(rt, threads=2)  # its maintenance requeues the dead worker's shard
    wait_done(rt, event["event_id"], timeout=60)
    summary = rt.tracker.summary(event["event_id"])
    assert summary["counts"]["delivered"] == 300

    received = Counter(r.headers["webhook-id"] for r in sink.received)
    for sub in subs:
        did = delivery_id(event["event_id"], sub.id, "webhook")
        assert received[did] >= 1
        if sub.seq in delivered_before:
            assert received[did] == 1, "a delivery recorded before the kill was sent again"
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= 2 * 100  # at most the chunks in flight when the worker died


@pytest.mark.slow
def test_fanout_survives_five_random_sigkills_with_every_delivery_final(runtime, sink, start_worker):
    n = 3000
    rt = runtime(
        shard_size=200,
        heartbeat_timeout_ms=2000,
        webhook_concurrency=32,
        host_concurrency=32,
        rate_limit="100/hour",
    )
    subs = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/k/{i}"}).subscriber
        for i in range(n)
    ]
    for i in range(n):
        sink.replies[f"/k/{i}"] = Reply(200, delay_s=0.01)
    s = rt.settings
    env = {
        **os.environ,
        "NOTIFYD_REDIS_URL": rt.url,
        "NOTIFYD_NAMESPACE": s.namespace,
        "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
        "NOTIFYD_SHARD_SIZE": "200",
        "NOTIFYD_HEARTBEAT_TIMEOUT_MS": "2000",
        "NOTIFYD_WEBHOOK_CONCURRENCY": "32",
        "NOTIFYD_HOST_CONCURRENCY": "32",
        "NOTIFYD_POLL_TIMEOUT_MS": "20",
        "NOTIFYD_RATE_LIMIT": "100/hour",
        "NOTIFYD_DATA_DIR": str(s.data_dir),
    }
    rng = random.Random(1234)
    event = incident_event()
    rt.publisher.publish(event)
    seqs = [x.seq for x in subs]
    ids = {x.seq: delivery_id(event["event_id"], x.id, "webhook") for x in subs}
    snapshots: list[tuple[set[str], Counter[str]]] = []
    for _ in range(5):
        victim = subprocess.Popen(
            [sys.executable, "-m", "notifyd", "worker", "--threads", "4"], env=env, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(1.0, 2.5))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        time.sleep(0.1)  # let the sink finish answering what was in flight
        final = {ids[seq] for seq, r in rt.tracker.records(event["event_id"], seqs).items() if r.final}
        snapshots.append((final, Counter(r.headers["webhook-id"] for r in list(sink.received))))
    start_worker(rt, threads=4)
    wait_done(rt, event["event_id"], timeout=120)
    counts = rt.tracker.summary(event["event_id"])["counts"]
    assert counts["planned"] == n and counts["delivered"] == n, counts

    received = Counter(r.headers["webhook-id"] for r in sink.received)
    assert set(received) == set(ids.values())
    for final, seen_then in snapshots:
        # What was recorded as delivered at a kill is never sent again afterwards.
        assert all(received[i] == seen_then[i] for i in final)
    duplicates = sum(c - 1 for c in received.values())
    # In flight at each kill: at most one chunk (100) per worker thread (4).
    assert duplicates <= 5 * 4 * 100, duplicates


@pytest.mark.slow
def test_a_worker_killed_after_handing_on_its_stragglers_has_them_sent_by_the_continuation(
    runtime, sink, start_worker
):
    from notifyd.state.queues import lane_stats

    rt = runtime(heartbeat_timeout_ms=2000, webhook_timeout_s=4.0, handoff_after_ms=100, shard_size=100)
    fast = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/f/{i}"}).subscriber
        for i in range(20)
    ]
    held = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/g/{i}"}).subscriber
        for i in range(10)
    ]
    gate = sink.gate("/g/")
    s = rt.settings
    env = {
        **os.environ,
        "NOTIFYD_REDIS_URL": rt.url,
        "NOTIFYD_NAMESPACE": s.namespace,
        "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
        "NOTIFYD_SHARD_SIZE": "100",
        "NOTIFYD_HEARTBEAT_TIMEOUT_MS": "2000",
        "NOTIFYD_WEBHOOK_TIMEOUT_S": "4",
        "NOTIFYD_HANDOFF_AFTER_MS": "100",
        "NOTIFYD_POLL_TIMEOUT_MS": "20",
        "NOTIFYD_DATA_DIR": str(s.data_dir),
    }
    victim = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "worker", "--threads", "2"], env=env, stderr=subprocess.DEVNULL
    )
    event = incident_event(priority="normal")
    rt.publisher.publish(event)
    try:
        # The shard streamed: the fast deliveries are recorded while the held ones are in flight,
        # and the shard handed those on (a delayed continuation) and was acked.
        assert sink.wait_for(lambda: gate.waiting == 10, timeout=30)
        assert wait_until(
            lambda: rt.tracker.summary(event["event_id"])["counts"]["delivered"] == 20, timeout=30
        )

        def handed_on() -> bool:
            normal = next(x for x in lane_stats(rt.client, rt.keys) if x.lane == "normal")
            return normal.delayed == 1 and normal.in_flight == 0

        assert wait_until(handed_on, timeout=10)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    records = rt.tracker.records(event["event_id"], [sub.seq for sub in held])
    assert [r.status for r in records.values()] == ["pending"] * 10
    gate.open()  # the dead worker's requests get their answers, which nobody records

    start_worker(rt, threads=2)  # the continuation comes due and sends the ten again
    assert wait_until(lambda: rt.tracker.summary(event["event_id"])["state"] == "done", timeout=60)
    assert rt.tracker.summary(event["event_id"])["counts"]["delivered"] == 30
    received = Counter(r.headers["webhook-id"] for r in sink.received)
    for sub in fast:
        assert received[delivery_id(event["event_id"], sub.id, "webhook")] == 1
    for sub in held:
        assert received[delivery_id(event["event_id"], sub.id, "webhook")] >= 1
