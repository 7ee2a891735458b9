"""Ids that users choose go into Redis keys escaped: no id can reach into another's keys."""

from __future__ import annotations

from notifyd.state.keys import Keys, escape
from tests.support.events import incident_event
from tests.support.wait import summary_of, wait_until


def _summary(rt, event_id: str) -> dict:
    return summary_of(rt, event_id) or {}


def test_escape_keeps_plain_ids_and_encodes_the_separator_and_the_escape_character():
    assert escape("inc-42-update-3") == "inc-42-update-3"
    assert escape("X:shards") == "X%3Ashards"
    assert escape("100%:done") == "100%25%3Adone"
    assert escape("a%3Ab") != escape("a:b")


def test_no_event_id_names_another_events_keys():
    keys = Keys("ns")
    assert keys.event("X:shards") != keys.event_shards("X")
    assert keys.deliveries("X:1", 2) != keys.deliveries("X", 1)
    assert keys.page_events("a:events") != keys.page_seq("a") and keys.page_seq(
        "a:events"
    ) != keys.page_events("a")


def test_dedup_keys_are_per_page_unambiguous():
    keys = Keys("ns")
    assert keys.dedup("a:b", "c") != keys.dedup("a", "b:c")


def test_event_named_like_another_events_shard_bitmap_does_not_stop_that_event(
    runtime, recorder, start_worker
):
    rt = runtime()
    for i in range(3):
        rt.subscribers.add("acme", {"channel": "email", "target": f"ops{i}@example.com"})
    start_worker(rt)
    first = incident_event(event_id="X:shards")
    second = incident_event(event_id="X")
    assert rt.publisher.publish(first).status == "accepted"
    assert wait_until(lambda: _summary(rt, "X:shards").get("state") == "done")
    assert rt.publisher.publish(second).status == "accepted"
    assert wait_until(lambda: _summary(rt, "X").get("state") == "done"), _summary(rt, "X")
    for event_id in ("X:shards", "X"):
        assert _summary(rt, event_id)["counts"]["delivered"] == 3
        assert len(recorder.for_event(event_id)) == 3


def test_same_dedup_key_on_pages_whose_ids_join_alike_does_not_deduplicate(runtime, recorder, start_worker):
    rt = runtime(dedup_window_s=60)
    rt.subscribers.add("a:b", {"channel": "email", "target": "one@example.com"})
    rt.subscribers.add("a", {"channel": "email", "target": "two@example.com"})
    start_worker(rt)
    on_ab = incident_event(page="a:b", dedup_key="c")
    on_a = incident_event(page="a", dedup_key="b:c")
    assert rt.publisher.publish(on_ab).status == "accepted"
    assert rt.publisher.publish(on_a).status == "accepted"
    assert wait_until(lambda: all(_summary(rt, e["event_id"]).get("state") == "done" for e in (on_ab, on_a)))
    assert [s.target for s in recorder.for_event(on_ab["event_id"])] == ["one@example.com"]
    assert [s.target for s in recorder.for_event(on_a["event_id"])] == ["two@example.com"]
