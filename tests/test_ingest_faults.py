"""Faults injected between Redis and the pipeline: an accepted event is still delivered in full."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.engine import Engine
from notifyd.store import StatusStore
from tests.support.events import incident_event, ref
from tests.support.wait import summary_of, wait_until

#: More than redis-py's retries of one command, so the fault reaches the step.
PAST_RETRIES = 20
SUBSCRIBERS = 7


@pytest.fixture
def proxied(runtime, recorder, fault_proxy) -> Iterator:
    rt = runtime(redis_url=fault_proxy.url, shard_size=3)
    for i in range(SUBSCRIBERS):
        rt.subscribers.add("acme", {"channel": "email", "target": f"ops{i}@example.com"})
    store = StatusStore.memory("eu-worker0")
    engine = Engine(rt, AdapterPool(rt.settings), store)
    yield rt, engine, store
    engine.adapters.close()


def _state(rt, event_id: str) -> str | None:
    return (summary_of(rt, event_id) or {}).get("state")


def _delivered_exactly_as_planned(rt, recorder, event_id: str) -> None:
    assert wait_until(lambda: _state(rt, event_id) == "done", timeout=60), rt.tracker.event_hash(
        rt.tracker.find(event_id)
    )
    summary = summary_of(rt, event_id)
    assert summary["counts"]["planned"] == SUBSCRIBERS
    assert summary["counts"]["delivered"] == SUBSCRIBERS
    assert "filtered" not in rt.tracker.event_hash(rt.tracker.find(event_id))
    assert len({s.delivery_id for s in recorder.for_event(event_id)}) == SUBSCRIBERS


def test_redis_failure_between_store_write_and_shard_count_still_delivers_in_full(
    proxied, recorder, fault_proxy, start_worker
):
    rt, engine, store = proxied
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    fault_proxy.on(b"shards_total", "drop", times=PAST_RETRIES)
    with pytest.raises(redis.ConnectionError):
        engine.ingest(ref(event))  # a worker's first attempt at the queued ingest message
    assert store.seen(event["page_id"], event["event_id"]), (
        "the failed attempt marked the event seen in the store"
    )
    assert "shards_total" not in rt.tracker.event_hash(ref(event))

    fault_proxy.clear()
    start_worker(rt, threads=2, store=store)  # the message is still queued: this is its redelivery
    _delivered_exactly_as_planned(rt, recorder, event["event_id"])


def test_worker_retrying_an_ingest_that_lost_redis_after_the_store_write_delivers_in_full(
    proxied, recorder, fault_proxy, start_worker
):
    rt, _, store = proxied
    # Enough drops to fail the first attempt (redis-py retries 3 times); dramatiq's retry gets through.
    fault_proxy.on(b"shards_total", "drop", times=4)
    start_worker(rt, threads=2, store=store)
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    _delivered_exactly_as_planned(rt, recorder, event["event_id"])
    assert fault_proxy._rules[0].hits == 4


def test_event_a_peer_region_took_is_still_a_replicated_duplicate(proxied, recorder):
    rt, engine, store = proxied
    event = incident_event()
    peer = StatusStore.memory("us-worker0")
    peer.add_peer("eu-worker0")
    peer.apply_event(event)
    payload = peer.sync_payload_for("eu-worker0")
    assert payload is not None
    store.receive_sync("us-worker0", payload)
    assert rt.publisher.publish(event).status == "accepted"
    engine.ingest(ref(event))
    assert rt.tracker.event_hash(ref(event))["filtered"].startswith("replicated_duplicate")
    assert _state(rt, event["event_id"]) == "done"
    assert recorder.for_event(event["event_id"]) == []


def test_redis_lost_while_recording_outcomes_reruns_the_shard_and_every_delivery_ends_final(
    proxied, recorder, fault_proxy, start_worker
):
    rt, _, store = proxied
    rule = fault_proxy.on(b"\r\nrecord\r\n", "drop", times=3)  # the tracker's record call
    start_worker(rt, threads=2, store=store)
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    assert wait_until(lambda: _state(rt, event["event_id"]) == "done", timeout=60), rt.tracker.event_hash(
        event["event_id"]
    )
    assert rule.hits == 3
    summary = rt.tracker.summary(ref(event))
    assert summary["counts"]["planned"] == SUBSCRIBERS
    assert summary["counts"]["delivered"] == SUBSCRIBERS
    sent = [s.delivery_id for s in recorder.for_event(event["event_id"])]
    assert len(set(sent)) == SUBSCRIBERS
    # Resent at most what was in flight when the records were lost: each send whose record failed.
    assert len(sent) - SUBSCRIBERS <= rule.hits * 3  # shard_size=3


def test_redis_stalling_mid_ingest_delays_the_event_but_delivers_it_in_full(
    proxied, recorder, fault_proxy, start_worker
):
    rt, _, store = proxied
    rule = fault_proxy.on(b"shards_total", "stall", times=1, seconds=1.5)
    start_worker(rt, threads=2, store=store)
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    _delivered_exactly_as_planned(rt, recorder, event["event_id"])
    assert rule.hits == 1
