"""Restart Redis (AOF) mid-run: nothing accepted is lost."""

from __future__ import annotations

import os
import signal
import time

import pytest

from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.runtime.wiring import Runtime
from notifyd.runtime.worker import InProcessWorker
from tests.support.events import incident_event
from tests.support.wait import wait_until


@pytest.mark.slow
def test_events_accepted_before_redis_is_killed_are_all_delivered_after_it_restarts(
    tmp_path, make_settings, recorder
):
    server = EmbeddedRedis(tmp_path / "aof")
    url = server.start()
    # A shard re-run after the crash takes rate budget again; this test is about loss, not limits.
    rt = Runtime.start(make_settings(redis_url=url, shard_size=20, rate_limit="1000/hour"))
    for i in range(200):
        rt.subscribers.add("acme", {"channel": "email", "target": f"u{i}@example.com"})
    recorder.delay_s = 0.02
    worker = InProcessWorker.start(rt, threads=2)
    restarted = EmbeddedRedis(tmp_path / "aof")
    try:
        events = [incident_event() for _ in range(10)]
        for event in events:
            assert rt.publisher.publish(event).status == "accepted"
        assert wait_until(lambda: len(recorder.sent) >= 100)
        assert server._process is not None
        os.kill(server._process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
        server._process.wait()
        server.stop()
        time.sleep(1.0)
        assert restarted.start() == url

        def all_done() -> bool:
            return all((rt.tracker.summary(e["event_id"]) or {}).get("state") == "done" for e in events)

        if not wait_until(all_done, timeout=60):
            summaries = {e["event_id"]: rt.tracker.summary(e["event_id"]) for e in events}
            stuck = [(k, s) for k, s in summaries.items() if not s or s["state"] != "done"]
            pytest.fail(f"not done after the restart: {stuck}")
        for event in events:
            assert rt.tracker.summary(event["event_id"])["counts"]["delivered"] == 200
    finally:
        worker.stop()
        rt.close()
        restarted.stop()
