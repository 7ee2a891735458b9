"""What an event costs in Redis once it is over, and what a full embedded server does."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import redis

from notifyd.api.server import start_in_thread
from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from notifyd.state.tracking import Record, Update
from tests.support.events import incident_event, ref

LONG_MESSAGE = "x" * 3_900


def _finish(rt: Runtime, handle: str, status: str) -> None:
    """Run the event's one shard to the end, as a worker would, every delivery ``status``.

    ``handle`` is the event's ref (keys.event_ref)."""
    rt.client.hset(rt.keys.event(handle), mapping={"shards_total": 1, "seq_top": 2})
    rt.tracker.plan(handle, [Update(seq, Record("pending", 0, 0)) for seq in (0, 1)])
    rt.tracker.record(handle, [Update(seq, Record(status, 1, 1)) for seq in (0, 1)])
    rt.tracker.shard_done(handle, 0)


def _event_memory(rt: Runtime, handle: str) -> int:
    return int(rt.client.memory_usage(rt.keys.event(handle), samples=0) or 0)


@pytest.mark.parametrize("status", ["delivered", "rate_limited", "suppressed"])
def test_an_event_whose_deliveries_all_ended_keeps_its_record_but_not_its_body(runtime, status):
    rt = runtime()
    event = incident_event()
    event["incident"]["message"] = LONG_MESSAGE
    assert rt.publisher.publish(event).status == "accepted"
    before = _event_memory(rt, ref(event))
    _finish(rt, ref(event), status)
    summary = rt.tracker.summary(ref(event))
    assert summary is not None and summary["state"] == "done"
    assert summary["counts"][status] == 2
    assert not rt.client.hexists(rt.keys.event(ref(event)), "body")
    assert _event_memory(rt, ref(event)) < before - 3_500
    # The record still answers duplicates for the event-id TTL.
    assert rt.publisher.publish(event).status == "duplicate"
    assert rt.client.ttl(rt.keys.event(ref(event))) > 0


def test_an_event_with_a_failed_delivery_keeps_its_body_for_a_redrive(runtime):
    rt = runtime()
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    _finish(rt, ref(event), "failed")
    assert rt.tracker.summary(ref(event))["state"] == "done"
    assert rt.client.hexists(rt.keys.event(ref(event)), "body")


def test_a_deduplicated_event_keeps_no_body(runtime):
    rt = runtime()
    first = incident_event(dedup_key="db-down")
    second = incident_event(dedup_key="db-down")
    second["incident"]["message"] = LONG_MESSAGE
    assert rt.publisher.publish(first).status == "accepted"
    assert rt.publisher.publish(second).status == "deduplicated"
    kept = rt.client.hgetall(rt.keys.event(ref(second)))
    assert b"body" not in kept and kept[b"state"] == b"deduplicated"


def test_the_embedded_server_refuses_writes_when_full_and_publishing_says_503(tmp_path):
    server = EmbeddedRedis(tmp_path / "small", maxmemory="8mb")
    url = server.start()
    client = redis.Redis.from_url(url)
    try:
        policy = client.config_get("maxmemory*")
        assert policy["maxmemory-policy"] == "noeviction"
        assert int(policy["maxmemory"]) == 8 * 1024 * 1024
        settings = Settings(
            redis_url=url,
            namespace=f"nt{uuid.uuid4().hex[:10]}",
            data_dir=tmp_path / "var",
            api_keys="a-publisher-key-0123456789abcdefghij:publish+operate/critical",
        )
        rt = Runtime.start(settings)
        handle = start_in_thread(rt, None, host="127.0.0.1", port=0, announce=False)
        try:
            with httpx.Client(
                base_url=handle.url,
                headers={"Authorization": "Bearer a-publisher-key-0123456789abcdefghij"},
                timeout=15,
            ) as http:
                assert http.get("/readyz").json()["memory_pressure"] < 0.9
                with pytest.raises(redis.ResponseError, match="maxmemory"):
                    for i in range(1000):
                        client.set(f"filler:{i}", b"x" * 100_000)
                filled = client.dbsize()
                event = incident_event()
                r = http.post("/v1/events", json=event)
                assert r.status_code == 503, r.text
                assert "nothing was accepted" in r.json()["detail"]
                assert client.dbsize() == filled  # nothing was written, nothing was evicted
                assert http.get("/readyz").json()["memory_pressure"] >= 0.9
        finally:
            handle.stop()
            rt.close()
    finally:
        client.close()
        server.stop()
        time.sleep(0)
