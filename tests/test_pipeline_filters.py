"""Integration tests on real Redis: what must not go out, doesn't."""

from __future__ import annotations

import time

from tests.support.events import component_event, incident_event, ref
from tests.support.wait import wait_done, wait_until

#: The states an event settles in here: delivered what it planned, or deduplicated.
SETTLED = ("done", "deduplicated")


def _add_webhooks(rt, sink, n: int, page: str = "acme", **extra):
    return [
        rt.subscribers.add(page, {"channel": "webhook", "target": f"{sink.url}/h/{i}", **extra})
        for i in range(n)
    ]


def test_repeated_event_id_is_a_duplicate_and_delivers_nothing(runtime, sink, start_worker):
    rt = runtime()
    _add_webhooks(rt, sink, 3)
    start_worker(rt)
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    wait_done(rt, event["event_id"], states=SETTLED)
    assert rt.publisher.publish(event).status == "duplicate"
    time.sleep(0.5)
    assert len(sink.received) == 3
    assert rt.tracker.summary(ref(event))["counts"]["planned"] == 3


def test_second_event_with_same_dedup_key_within_window_delivers_nothing(runtime, sink, start_worker):
    rt = runtime(dedup_window_s=60)
    _add_webhooks(rt, sink, 2)
    start_worker(rt)
    first = incident_event(dedup_key="db-primary-down")
    second = incident_event(dedup_key="db-primary-down")
    assert rt.publisher.publish(first).status == "accepted"
    assert rt.publisher.publish(second).status == "deduplicated"
    wait_done(rt, first["event_id"], states=SETTLED)
    time.sleep(0.3)
    assert len(sink.received) == 2
    assert rt.tracker.summary(ref(second))["state"] == "deduplicated"
    assert rt.tracker.summary(ref(second))["counts"]["planned"] == 0


def test_same_dedup_key_after_the_window_delivers_again(runtime, sink, start_worker):
    rt = runtime(dedup_window_s=1)
    _add_webhooks(rt, sink, 2)
    start_worker(rt)
    first = incident_event(dedup_key="flappy")
    assert rt.publisher.publish(first).status == "accepted"
    time.sleep(1.2)
    later = incident_event(dedup_key="flappy")
    assert rt.publisher.publish(later).status == "accepted"
    for event in (first, later):
        wait_done(rt, event["event_id"], states=SETTLED)
    assert rt.tracker.summary(ref(later))["counts"]["delivered"] == 2
    assert len(sink.received) == 4


def test_dedup_key_is_per_page(runtime, sink, start_worker):
    rt = runtime()
    _add_webhooks(rt, sink, 1, page="acme")
    _add_webhooks(rt, sink, 1, page="globex")
    assert rt.publisher.publish(incident_event(page="acme", dedup_key="k")).status == "accepted"
    assert rt.publisher.publish(incident_event(page="globex", dedup_key="k")).status == "accepted"


def test_notify_false_records_the_event_and_delivers_nothing(runtime, sink, start_worker):
    rt = runtime()
    _add_webhooks(rt, sink, 3)
    start_worker(rt)
    event = incident_event(notify=False)
    assert rt.publisher.publish(event).status == "accepted"
    wait_done(rt, event["event_id"], states=SETTLED)
    summary = rt.tracker.summary(ref(event))
    assert summary["state"] == "done"
    assert summary["counts"]["planned"] == 0
    assert sink.received == []


def test_eleventh_notification_in_an_hour_to_one_subscriber_is_deferred_not_dropped(
    runtime, sink, start_worker
):
    rt = runtime(rate_limit="10/hour")
    (sub,) = _add_webhooks(rt, sink, 1)
    start_worker(rt)
    events = [component_event(status="degraded_performance") for _ in range(11)]
    for event in events:
        assert rt.publisher.publish(event).status == "accepted"

    def settled() -> bool:
        counts = [(rt.tracker.summary(ref(e)) or {}).get("counts", {}) for e in events]
        return sum(c.get("delivered", 0) + c.get("deferred", 0) for c in counts) == 11

    assert wait_until(settled)
    counts = [rt.tracker.summary(ref(e))["counts"] for e in events]
    assert sum(c["delivered"] for c in counts) == 10
    assert sum(c["deferred"] for c in counts) == 1
    assert sum(c["rate_limited"] for c in counts) == 0
    assert len(sink.received) == 10
    # Its digest is due when the subscriber's hour-long window opens.
    (due,) = rt.client.zrange(rt.keys.schedule(), 0, -1, withscores=True)
    assert due[0].decode().endswith(f"\x1f{sub.subscriber.seq}")
    assert 3000 < due[1] - time.time() <= 3600


def test_rate_limit_of_one_channel_leaves_another_channel_of_the_same_subscriber_alone(runtime):
    from notifyd.pipeline.ratelimit import BatchRateLimiter

    rt = runtime()
    limiter = BatchRateLimiter(rt.client, rate="2/hour", key_prefix=rt.keys.rate_limit_prefix())
    assert limiter.hit_many([("sub-1", "webhook")] * 3) == [True, True, False]
    assert limiter.hit_many([("sub-1", "email"), ("sub-2", "webhook")]) == [True, True]


def test_batched_rate_limit_shares_counters_with_the_limits_library(runtime):
    from limits import parse
    from limits.strategies import MovingWindowRateLimiter

    from notifyd.pipeline.ratelimit import BatchRateLimiter

    rt = runtime()
    limiter = BatchRateLimiter(rt.client, rate="5/hour", key_prefix=rt.keys.rate_limit_prefix())
    limiter.hit_many([("sub-9", "sms")] * 3)
    stats = MovingWindowRateLimiter(limiter.storage).get_window_stats(parse("5/hour"), "sub-9", "sms")
    assert stats.remaining == 2


def test_component_filter_limits_who_hears_about_an_event(runtime, sink, start_worker):
    rt = runtime()
    api_only = rt.subscribers.add(
        "acme", {"channel": "webhook", "target": f"{sink.url}/api", "components": ["api"]}
    )
    web_only = rt.subscribers.add(
        "acme", {"channel": "webhook", "target": f"{sink.url}/web", "components": ["web"]}
    )
    everything = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/all"})
    start_worker(rt)
    event = component_event(component="api", status="partial_outage")
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"], states=SETTLED)
    paths = sorted(r.path for r in sink.received)
    assert paths == ["/all", "/api"]
    assert api_only.created and web_only.created and everything.created


def test_removed_subscriber_hears_nothing_and_disabled_one_is_suppressed(runtime, sink, start_worker):
    rt = runtime()
    gone = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/gone"}).subscriber
    off = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/off"}).subscriber
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/on"})
    rt.subscribers.remove("acme", gone.id)
    rt.subscribers.disable("acme", off.seq, "endpoint_gone")
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"], states=SETTLED)
    counts = rt.tracker.summary(ref(event))["counts"]
    assert (counts["planned"], counts["delivered"], counts["suppressed"]) == (2, 1, 1)
    assert [r.path for r in sink.received] == ["/on"]
