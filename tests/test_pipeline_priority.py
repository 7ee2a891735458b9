"""A critical incident never waits behind a low-priority fanout."""

from __future__ import annotations

from tests.support.events import component_event, incident_event
from tests.support.wait import wait_done, wait_until


def test_critical_event_shards_run_before_the_remaining_low_ones(runtime, recorder, start_worker):
    recorder.delay_s = 0.05  # every shard takes a little while, like real sends
    rt = runtime(shard_size=5)
    for i in range(200):
        rt.subscribers.add("bulk", {"channel": "email", "target": f"user{i}@example.com"})
    for i in range(5):
        rt.subscribers.add("vip", {"channel": "email", "target": f"oncall{i}@example.com"})
    start_worker(rt, threads=1)

    low = component_event(page="bulk", status="under_maintenance", priority="low")
    rt.publisher.publish(low)
    assert wait_until(lambda: len(recorder.for_event(low["event_id"])) >= 10)
    critical = incident_event(page="vip", priority="critical")
    rt.publisher.publish(critical)

    wait_done(rt, low["event_id"], timeout=30)
    assert rt.tracker.summary(critical["event_id"])["counts"]["delivered"] == 5
    low_times = sorted(s.at for s in recorder.for_event(low["event_id"]))
    critical_done = max(s.at for s in recorder.for_event(critical["event_id"]))
    low_after = sum(1 for t in low_times if t > critical_done)
    # The low fanout still had ~38 shards (190 deliveries) queued when the critical event
    # arrived; only what the worker had prefetched may run before it.
    assert low_after >= 150, f"only {low_after} low deliveries ran after the critical event"


def test_priority_comes_from_impact_when_the_event_does_not_name_one():
    from notifyd.publish import parse_event

    assert parse_event(incident_event()).priority.value == "high"  # impact major
    minor = incident_event()
    minor["incident"]["impact"] = "minor"
    assert parse_event(minor).priority.value == "normal"
    critical = incident_event()
    critical["incident"]["impact"] = "critical"
    assert parse_event(critical).priority.value == "critical"
