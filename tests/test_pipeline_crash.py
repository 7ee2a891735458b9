"""Kill a worker mid-shard: the shard runs again and resends nothing already delivered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from notifyd.ids import delivery_id
from tests.conftest import wait_until
from tests.support.events import incident_event
from tests.support.sink import Reply


@pytest.mark.slow
def test_killed_worker_shard_reruns_without_resending_what_was_delivered(runtime, sink, start_worker):
    rt = runtime(shard_size=300, heartbeat_timeout_ms=2000, webhook_concurrency=20)
    subs = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/w/{i}"}).subscriber
        for i in range(300)
    ]
    for i in range(300):
        sink.defaults[f"/w/{i}"] = Reply(200, delay_s=0.1)
    s = rt.settings
    env = {
        **os.environ,
        "NOTIFYD_REDIS_URL": rt.url,
        "NOTIFYD_NAMESPACE": s.namespace,
        "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
        "NOTIFYD_SHARD_SIZE": "300",
        "NOTIFYD_HEARTBEAT_TIMEOUT_MS": "2000",
        "NOTIFYD_WEBHOOK_CONCURRENCY": "20",
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
    assert wait_until(lambda: rt.tracker.summary(event["event_id"])["state"] == "done", timeout=60)
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
