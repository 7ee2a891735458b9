"""A subscriber whose sealed secret does not open costs that one delivery, never its shard.

The key that sealed one subscriber's webhook secret is dropped from the keyring (as a
rotation that skipped ``notifyd secrets rewrap`` would). The shard's other subscribers
are delivered and verify with their secrets; that one is recorded as not sent, retried
on the webhook schedule, and ends ``failed`` naming the key id, unless the key comes
back before its last retry. Real Redis, a real loopback sink, the real worker.
"""

from __future__ import annotations

import json
import logging

from prometheus_client import REGISTRY
from standardwebhooks.webhooks import Webhook

from notifyd.runtime.worker import InProcessWorker
from notifyd.state.keys import bucket_of
from notifyd.state.schedule import Schedule
from notifyd.state.sealing import Keyring
from tests.support.events import incident_event, ref
from tests.support.wait import wait_done, wait_until
from tests.test_digest import PAGE, Clock, _settled, _status, _update

OLD_KEY = "old-secret-key-" + "k" * 17 + "0123456789"
NEW_KEY = "new-secret-key-" + "n" * 17 + "9876543210"
OLD_KID = Keyring([OLD_KEY]).newest_kid
REASON = f"sealed: key id {OLD_KID} not configured"


def _unopenable(metric: str = "notifyd_deliveries_total") -> float:
    return REGISTRY.get_sample_value(metric, {"channel": "webhook", "outcome": "unopenable"}) or 0.0


def _record(rt, event, seq):
    return rt.tracker.records(ref(event), [seq]).get(seq)


def test_a_secret_sealed_with_a_dropped_key_fails_only_its_delivery_after_its_retries(
    runtime, sink, start_worker, caplog
):
    old = runtime(secret_key=OLD_KEY)
    rt = runtime(secret_key=NEW_KEY, retry_schedule_webhook="0.1,0.1,0.1", retry_jitter=0.0)
    before = [
        rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/ok/{i}"}) for i in range(3)
    ]
    stale = old.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/stale"})
    after = [
        rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/ok/{i}"}) for i in range(3, 6)
    ]
    counted = _unopenable()
    caplog.set_level(logging.WARNING, logger="notifyd.pipeline")
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    summary = wait_done(rt, event["event_id"])

    # The shard's other subscribers were delivered, each signed with its own secret.
    assert summary["counts"]["delivered"] == 6 and summary["counts"]["failed"] == 1
    for i, added in enumerate(before + after):
        (got,) = sink.on(f"/ok/{i}")
        assert Webhook(added.generated_secret).verify(got.body, got.headers)["event_id"] == event["event_id"]
    # The stale one was never sent; tried on the schedule (1 + 3 retries), then failed, naming the key.
    assert sink.on("/stale") == []
    record = _record(rt, event, stale.subscriber.seq)
    assert (record.status, record.attempts, record.error) == ("failed", 4, REASON)
    assert rt.client.zscore(rt.keys.dead_letters(), f"{ref(event)}\x1f{stale.subscriber.seq}") is not None
    assert _unopenable() - counted == 4
    # Not the endpoint's fault: the subscriber stays enabled.
    assert rt.subscribers.get_seq(PAGE, stale.subscriber.seq).disabled is None
    # One warning per step (the shard, then each retry), naming the key id and never a secret.
    lines = [r.getMessage() for r in caplog.records if "sealed parts did not open" in r.getMessage()]
    assert len(lines) == 4
    assert all(OLD_KID in line and "1 deliveries not sent" in line for line in lines)
    assert "1 retrying" in lines[0] and "1 failed" in lines[-1]
    text = caplog.text
    assert stale.generated_secret not in text and OLD_KEY not in text and NEW_KEY not in text


def test_restoring_the_dropped_key_before_the_retry_delivers_the_delivery(runtime, sink):
    old = runtime(secret_key=OLD_KEY)
    stale = old.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/stale"})
    schedule = {"retry_schedule_webhook": "3,3", "retry_jitter": 0.0}
    rt = runtime(secret_key=NEW_KEY, **schedule)
    fine = rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/fine"})
    event = incident_event()
    worker = InProcessWorker.start(rt, threads=4)
    try:
        rt.publisher.publish(event)
        assert wait_until(
            lambda: (r := _record(rt, event, stale.subscriber.seq)) is not None and r.status == "retrying"
        )
        assert wait_until(lambda: len(sink.on("/fine")) == 1)
    finally:
        worker.stop()
    record = _record(rt, event, stale.subscriber.seq)
    assert (record.status, record.attempts, record.error) == ("retrying", 1, REASON)
    assert rt.tracker.summary(ref(event))["counts"]["retrying"] == 1

    # The operator puts the old key back and restarts the workers: the durable retry delivers it.
    restored = runtime(secret_key=f"{NEW_KEY},{OLD_KEY}", **schedule)
    worker = InProcessWorker.start(restored, threads=4)
    try:
        summary = wait_done(restored, event["event_id"], timeout=30)
    finally:
        worker.stop()
    assert summary["counts"]["delivered"] == 2 and summary["counts"]["failed"] == 0
    record = _record(restored, event, stale.subscriber.seq)
    assert (record.status, record.attempts) == ("delivered", 2)
    (got,) = sink.on("/stale")
    assert Webhook(stale.generated_secret).verify(got.body, got.headers)["event_id"] == event["event_id"]
    assert len(sink.on("/fine")) == 1
    (fine_got,) = sink.on("/fine")
    assert Webhook(fine.generated_secret).verify(fine_got.body, fine_got.headers)


def test_a_digest_whose_secret_does_not_open_waits_and_goes_out_once_the_key_is_back(runtime, sink, caplog):
    clock = Clock()
    settings = {"rate_limit": "1/10 seconds", "schedule_poll_ms": 20}
    both = runtime(secret_key=f"{NEW_KEY},{OLD_KEY}", **settings)
    added = runtime(secret_key=OLD_KEY).subscribers.add(
        PAGE, {"channel": "webhook", "target": f"{sink.url}/h"}
    )
    first, second = _update(1), _update(2, "monitoring")
    worker = InProcessWorker.start(both, threads=4, clock=clock)
    try:
        for event in (first, second):
            both.publisher.publish(event)
            assert wait_until(lambda e=event: _settled(both, e["event_id"]))
    finally:
        worker.stop()
    assert _status(both, second["event_id"]) == "deferred"
    assert len(sink.received) == 1

    # The old key is dropped: when the window opens, the digest is not sent and comes due again.
    new_only = runtime(secret_key=NEW_KEY, **settings)
    counted = _unopenable("notifyd_digests_total")
    caplog.set_level(logging.WARNING, logger="notifyd.pipeline.digest")
    clock.advance(10.5)
    worker = InProcessWorker.start(new_only, threads=4, clock=clock)
    try:
        assert wait_until(lambda: _unopenable("notifyd_digests_total") - counted == 1)
    finally:
        worker.stop()
    assert len(sink.received) == 1
    assert _status(new_only, second["event_id"]) == "deferred"  # still owed, not dropped
    (due,) = Schedule(new_only.client, new_only.keys).jobs().values()  # the subscriber's digest job
    assert due >= clock() + 29
    assert any(OLD_KID in r.getMessage() for r in caplog.records)

    # The key is back: the digest's next try delivers it, signed with the subscriber's secret.
    restored = runtime(secret_key=f"{NEW_KEY},{OLD_KEY}", **settings)
    clock.advance(31)
    worker = InProcessWorker.start(restored, threads=4, clock=clock)
    try:
        assert wait_until(lambda: _status(restored, second["event_id"]) == "digested")
    finally:
        worker.stop()
    digest = sink.received[-1]
    assert Webhook(added.generated_secret).verify(digest.body, digest.headers)["type"] == "digest"


def test_a_secret_copied_from_another_record_fails_only_its_delivery_naming_why(runtime, sink, start_worker):
    rt = runtime(retry_schedule_webhook="", retry_jitter=0.0)
    a = rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/a"})
    b = rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/b"})
    key_b = rt.keys.subscribers(PAGE, bucket_of(b.subscriber.seq))
    record_b = json.loads(rt.client.hget(key_b, str(b.subscriber.seq)))
    record_b["sec"] = a.subscriber.sealed_secret  # someone with Redis access moves a's secret to b
    rt.client.hset(key_b, str(b.subscriber.seq), json.dumps(record_b))
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    summary = wait_done(rt, event["event_id"])
    assert (summary["counts"]["delivered"], summary["counts"]["failed"]) == (1, 1)
    (got,) = sink.on("/a")
    assert Webhook(a.generated_secret).verify(got.body, got.headers)
    assert sink.on("/b") == []
    record = _record(rt, event, b.subscriber.seq)
    assert (record.status, record.attempts) == ("failed", 1)
    assert record.error == f"sealed: key id {rt.keyring.newest_kid} does not open"


def test_a_slack_hook_copied_from_another_record_fails_only_its_delivery_naming_why(
    runtime, sink, start_worker
):
    rt = runtime(retry_schedule_slack="", retry_jitter=0.0)
    a = rt.subscribers.add(PAGE, {"channel": "slack", "target": f"{sink.url}/services/T0/B0/a"}).subscriber
    b = rt.subscribers.add(PAGE, {"channel": "slack", "target": f"{sink.url}/services/T0/B0/b"}).subscriber
    key_b = rt.keys.subscribers(PAGE, bucket_of(b.seq))
    record_b = json.loads(rt.client.hget(key_b, str(b.seq)))
    record_b["t"] = a.stored_target  # someone with Redis access points b at a's (sealed) hook
    rt.client.hset(key_b, str(b.seq), json.dumps(record_b))
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    summary = wait_done(rt, event["event_id"])
    assert (summary["counts"]["delivered"], summary["counts"]["failed"]) == (1, 1)
    assert len(sink.on("/services/T0/B0/a")) == 1 and sink.on("/services/T0/B0/b") == []
    record = _record(rt, event, b.seq)
    assert (record.status, record.attempts) == ("failed", 1)
    assert record.error == f"sealed: key id {rt.keyring.newest_kid} does not open"
