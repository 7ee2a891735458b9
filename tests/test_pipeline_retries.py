"""Retries are durable delayed messages on a jittered schedule; Retry-After is honoured."""

from __future__ import annotations

import math
import random

from standardwebhooks.webhooks import Webhook

from notifyd.pipeline.retry import RETRY_GROUP_MIN, group_retries, next_delay
from tests.support.events import incident_event, ref
from tests.support.sink import Reply
from tests.support.wait import summary_of, wait_done, wait_until


def _state(rt, event_id):
    return (summary_of(rt, event_id) or {}).get("state")


def test_default_webhook_schedule_is_eight_retries_from_30s_to_60m_with_half_jitter():
    from notifyd.runtime.settings import Settings

    schedule = Settings().retry_schedule("webhook")
    assert schedule == (30, 60, 120, 240, 480, 960, 1920, 3600)
    rng = random.Random(7)
    delays = [next_delay(schedule, 1, jitter=0.5, rng=rng) for _ in range(2000)]
    assert 15 <= min(delays) < 16 and 44 < max(delays) <= 45
    assert next_delay(schedule, 8, jitter=0.5, rng=rng) >= 1800
    assert next_delay(schedule, 9, jitter=0.5, rng=rng) is None


def test_retry_after_is_never_undercut_by_the_schedule():
    assert next_delay((1.0,), 1, jitter=0.5, retry_after=120) == 120
    assert next_delay((1.0,), 1, jitter=0.0, retry_after=0.2) == 1.0


def test_a_few_retries_whose_jitter_spans_several_seconds_share_one_message_due_when_the_last_may_go():
    rng = random.Random(3)
    delays = [(next_delay((10.0,), 1, jitter=0.3, rng=rng), seq) for seq in range(12)]
    assert len({math.ceil(d) for d, _ in delays}) > 3  # spread over several whole seconds
    ((due_ms, seqs),) = group_retries(delays)
    assert sorted(seqs) == list(range(12))
    assert due_ms == math.ceil(max(d for d, _ in delays) * 1000)


def test_a_retry_after_of_an_hour_does_not_hold_back_retries_due_in_a_second():
    delays = [(0.9, 1), (1.1, 2), (3600.0, 3)]
    assert group_retries(delays) == [(1100, [1, 2]), (3_600_000, [3])]


def test_a_wave_of_retries_keeps_its_jitter_in_messages_of_at_least_the_group_size():
    rng = random.Random(5)
    delays = [(next_delay((30.0,), 1, jitter=0.5, rng=rng), seq) for seq in range(2000)]
    groups = group_retries(delays)
    by_seq = dict((seq, d) for d, seq in delays)
    assert sorted(s for _, seqs in groups for s in seqs) == list(range(2000))
    assert len(groups) > 10  # still spread over the jitter's seconds, not one burst
    assert all(len(seqs) >= RETRY_GROUP_MIN for _, seqs in groups[:-1])
    for due_ms, seqs in groups:
        # None goes sooner than its own delay, nor later than the latest delay of the schedule,
        # nor waits twice as long as its own delay.
        assert due_ms >= max(by_seq[s] for s in seqs) * 1000
        assert due_ms <= 45_000
        assert all(due_ms < 2 * by_seq[s] * 1000 + 1000 for s in seqs)
    dues = [due for due, _ in groups]
    assert dues == sorted(dues)


def test_target_failing_twice_is_delivered_on_the_third_attempt_with_the_same_webhook_id(
    runtime, sink, start_worker
):
    rt = runtime(retry_schedule_webhook="0.2,0.2,0.2", retry_jitter=0.0)
    added = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/flaky"})
    sink.script("/flaky", Reply(500), Reply(500), Reply(200))
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    got = sink.on("/flaky")
    assert len(got) == 3
    assert len({r.headers["webhook-id"] for r in got}) == 1
    # Every attempt verifies with the standard library of the spec, using the subscriber's secret.
    verifier = Webhook(added.generated_secret)
    for r in got:
        assert verifier.verify(r.body, r.headers)["event_id"] == event["event_id"]
    (item,) = rt.tracker.records(ref(event), [added.subscriber.seq]).values()
    assert (item.status, item.attempts) == ("delivered", 3)


def test_target_that_never_succeeds_ends_failed_and_dead_lettered(runtime, sink, start_worker):
    rt = runtime(retry_schedule_webhook="0.1,0.1,0.1", retry_jitter=0.0)
    sub = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/down"}).subscriber
    sink.replies["/down"] = Reply(503)
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    assert len(sink.on("/down")) == 4  # first attempt + 3 retries
    summary = rt.tracker.summary(ref(event))
    assert summary["counts"]["failed"] == 1 and summary["counts"]["retrying"] == 0
    (record,) = rt.tracker.records(ref(event), [sub.seq]).values()
    assert record.status == "failed" and record.attempts == 4 and "503" in record.error
    assert rt.client.zscore(rt.keys.dead_letters(), f"{ref(event)}\x1f{sub.seq}") is not None


def test_retry_after_from_the_target_is_honoured(runtime, sink, start_worker):
    rt = runtime(retry_schedule_webhook="0.05,0.05", retry_jitter=0.0)
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/busy"})
    sink.script("/busy", Reply(429, headers={"Retry-After": "2"}), Reply(200))
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    first, second = sink.on("/busy")
    assert second.at - first.at >= 1.9


def test_client_error_other_than_429_is_permanent_and_not_retried(runtime, sink, start_worker):
    rt = runtime(retry_schedule_webhook="0.05,0.05", retry_jitter=0.0)
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/bad"})
    sink.replies["/bad"] = Reply(400)
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    assert len(sink.on("/bad")) == 1
    assert rt.tracker.summary(ref(event))["counts"]["failed"] == 1


def test_gone_endpoint_disables_its_subscriber(runtime, sink, start_worker):
    rt = runtime()
    sub = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/gone"}).subscriber
    sink.replies["/gone"] = Reply(410)
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    assert rt.subscribers.get_seq("acme", sub.seq).disabled == "endpoint_gone"
    second = incident_event()
    rt.publisher.publish(second)
    wait_done(rt, second["event_id"])
    assert rt.tracker.summary(ref(second))["counts"]["suppressed"] == 1
    assert len(sink.on("/gone")) == 1


def test_redrive_resends_failed_deliveries_with_their_delivery_ids(runtime, sink, start_worker):
    from notifyd.pipeline.adapters import AdapterPool
    from notifyd.pipeline.engine import Engine

    rt = runtime(retry_schedule_webhook="", retry_jitter=0.0)
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/later"})
    sink.script("/later", Reply(500), Reply(200))
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    assert rt.tracker.summary(ref(event))["counts"]["failed"] == 1
    engine = Engine(rt, AdapterPool(rt.settings))
    assert engine.redrive(ref(event)) == 1
    assert wait_until(lambda: rt.tracker.summary(ref(event))["counts"]["delivered"] == 1)
    first, second = sink.on("/later")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert _state(rt, event["event_id"]) == "done"
    engine.close()


def test_endpoint_failing_ten_times_in_an_hour_is_quarantined_and_its_owner_told_once(
    runtime, sink, recorder, start_worker
):
    rt = runtime(retry_schedule_webhook="", retry_jitter=0.0, rate_limit="100/hour")
    sub = rt.subscribers.add(
        "acme", {"channel": "webhook", "target": f"{sink.url}/dead", "contact_email": "owner@example.com"}
    ).subscriber
    sink.replies["/dead"] = Reply(500)
    start_worker(rt)
    events = [incident_event() for _ in range(12)]
    for event in events:
        rt.publisher.publish(event)
        wait_done(rt, event["event_id"])
    assert len(sink.on("/dead")) == 10  # the tenth failure quarantines it
    assert rt.subscribers.get_seq("acme", sub.seq).disabled == "quarantined"
    assert rt.tracker.summary(ref(events[-1]))["counts"]["suppressed"] == 1
    notices = [s for s in recorder.sent if s.target == "owner@example.com"]
    assert len(notices) == 1
    # An operator reactivates it: enabled again, and its failure window starts afresh.
    from notifyd.pipeline.endpoint_health import EndpointHealth, reactivate

    assert reactivate(rt.client, rt.keys.ns, rt.subscribers, "acme", sub.id).disabled is None
    assert (
        EndpointHealth(rt.client, rt.keys.ns).on_failed([rt.subscribers.get("acme", sub.id)]).quarantine == []
    )
    assert reactivate(rt.client, rt.keys.ns, rt.subscribers, "acme", "sub_unknown") is None


def test_a_slow_endpoint_does_not_hold_back_other_subscribers(runtime, sink, start_worker):
    rt = runtime(webhook_timeout_s=30.0)
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/slow"})
    for i in range(30):
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/fast/{i}"})
    slow = sink.gate("/slow")
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    fast = lambda: [r for r in sink.received if r.path.startswith("/fast/")]  # noqa: E731
    # Every fast subscriber is answered while the slow one is still held at the gate.
    assert sink.wait_for(lambda: len(fast()) == 30 and slow.waiting == 1, timeout=30)
    assert sink.on("/slow") == []
    slow.open()
    summary = wait_done(rt, event["event_id"])
    assert summary["counts"]["delivered"] == 31


def test_gated_sink_holds_replies_until_opened(sink):
    """The gate the ordering tests rely on: a held request is counted and answered only after open()."""
    import threading

    import httpx

    gate = sink.gate("/held")
    answers: list[int] = []
    client = threading.Thread(target=lambda: answers.append(httpx.post(f"{sink.url}/held/1").status_code))
    client.start()
    assert sink.wait_for(lambda: gate.waiting == 1)
    assert answers == [] and sink.on("/held/1") == []
    assert httpx.post(f"{sink.url}/other").status_code == 200  # other paths are not held
    gate.open()
    client.join(10)
    assert answers == [200] and len(sink.on("/held/1")) == 1


def test_the_unreachable_notice_names_a_slack_hook_by_its_host_never_its_url():
    from notifyd.pipeline.endpoint_health import notice_message
    from notifyd.state.subscribers import StoredSubscriber
    from notifyd.state.target_hosts import endpoint_of

    hook = "https://hooks.slack.com/services/T0ACME/B0ACME/hooksecretpart0123456789"
    sub = StoredSubscriber("acme", 3, "sub_1", "slack", hook, None, None, "owner@example.com")
    endpoint = endpoint_of(sub.channel, hook)
    notice = notice_message(sub, endpoint, "ev-1", "http_500", "https://status.example", "2026-12-05")
    text = notice.notification.message
    assert "https://hooks.slack.com" in text and "sub_1" in text and "http_500" in text
    assert "/services/" not in text and "hooksecretpart" not in text
    assert notice.target == "owner@example.com"
