"""Defer and coalesce, never drop: the rate limit defers, a digest carries, a resolve gets through."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

from notifyd.state.digests import Deferral, DigestQueue
from notifyd.state.limiter import PackedLimiter
from tests.support.events import incident_event, ref
from tests.support.sink import Reply
from tests.support.wait import summary_of, wait_until

PAGE = "acme"


class Clock:
    """A clock the test moves by hand; the limiter, pacing and the scheduler all read it."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC).timestamp()
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.t

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.t += seconds


def _update(n: int, status: str = "identified", base: datetime | None = None, **extra) -> dict:
    at = (base or datetime.now(UTC)) + timedelta(seconds=n)
    return incident_event(
        event_id=f"inc-1-u{n}-{uuid.uuid4().hex[:6]}",
        type="incident_resolved" if status == "resolved" else "incident_updated",
        occurred_at=at.isoformat().replace("+00:00", "Z"),
        incident={
            "id": "inc-1",
            "title": "Database outage",
            "status": status,
            "impact": "major",
            "message": f"update {n}",
            "components": ["db"],
        },
        **extra,
    )


def _settled(rt, event_id: str) -> bool:
    s = summary_of(rt, event_id)
    if s is None or s["state"] in ("accepted", "fanning_out"):
        return False
    c = s["counts"]
    settled = ("delivered", "deferred", "digested", "superseded", "failed", "suppressed")
    return c["planned"] > 0 and sum(c[k] for k in settled) == c["planned"]


def _status(rt, event_id: str) -> str:
    records = rt.tracker.bucket_records(rt.tracker.find(event_id), 0)
    assert len(records) == 1
    return next(iter(records.values())).status


def _digest_of(rt, event_id: str) -> str | None:
    record = next(iter(rt.tracker.bucket_records(rt.tracker.find(event_id), 0).values()))
    return record.error if record.status == "digested" else None


def test_six_updates_and_a_resolve_give_three_sends_then_one_digest_carrying_resolved(
    runtime, sink, start_worker
):
    clock = Clock()
    rt = runtime(rate_limit="3/10 seconds", schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    start_worker(rt, clock=clock)
    base = datetime.now(UTC)
    updates = [_update(n, base=base) for n in range(1, 7)]
    for event in updates:
        assert rt.publisher.publish(event).status == "accepted"
        assert wait_until(lambda e=event: _settled(rt, e["event_id"]))
    assert len(sink.received) == 3
    assert [_status(rt, e["event_id"]) for e in updates] == ["delivered"] * 3 + ["deferred"] * 3
    assert rt.tracker.summary(ref(updates[3]))["state"] == "delivering"  # not done while deferred

    resolve = _update(7, "resolved", base=base)
    rt.publisher.publish(resolve)
    assert wait_until(lambda: len(sink.received) == 4)
    assert wait_until(lambda: _settled(rt, resolve["event_id"]))
    digest = sink.received[3]
    body = json.loads(digest.body)
    assert body["type"] == "digest"
    assert body["summary"] == ["4 updates on Database outage; now: resolved"]
    (item,) = body["items"]
    assert item["now"]["incident"]["status"] == "resolved"
    assert item["event_ids"] == [e["event_id"] for e in [*updates[3:], resolve]]
    # Every deferred update went out inside that digest, under the digest's delivery id.
    digest_id = digest.headers["webhook-id"]
    for event in [*updates[3:], resolve]:
        assert _status(rt, event["event_id"]) == "digested"
        assert _digest_of(rt, event["event_id"]) == digest_id
        assert rt.tracker.summary(ref(event))["state"] == "done"
    # Nothing is left to send after the resolve, even once the window opens again.
    clock.advance(30)
    rt_engine_jobs = rt.client.zcard(rt.keys.schedule())
    assert rt_engine_jobs == 0
    assert not wait_until(lambda: len(sink.received) > 4, timeout=1.0)


def test_when_the_window_opens_one_digest_carries_the_current_state(runtime, sink, start_worker):
    clock = Clock()
    rt = runtime(rate_limit="3/10 seconds", schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    start_worker(rt, clock=clock)
    base = datetime.now(UTC)
    statuses = ["investigating", "identified", "identified", "monitoring", "identified"]
    events = [_update(n, s, base=base) for n, s in enumerate(statuses, 1)]
    for event in events:
        rt.publisher.publish(event)
        assert wait_until(lambda e=event: _settled(rt, e["event_id"]))
    assert len(sink.received) == 3
    assert not wait_until(lambda: len(sink.received) > 3, timeout=0.5)  # the window is still closed
    clock.advance(10.5)
    assert wait_until(lambda: len(sink.received) == 4)
    body = json.loads(sink.received[3].body)
    assert body["summary"] == ["2 updates on Database outage; now: identified"]
    assert body["items"][0]["now"]["incident"]["message"] == "update 5"
    assert wait_until(lambda: all(rt.tracker.summary(ref(e))["state"] == "done" for e in events))
    assert [_status(rt, e["event_id"]) for e in events] == ["delivered"] * 3 + ["digested"] * 2


def test_a_critical_update_passes_the_limit(runtime, sink, start_worker):
    clock = Clock()
    rt = runtime(rate_limit="1/hour", schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    start_worker(rt, clock=clock)
    base = datetime.now(UTC)
    first = _update(1, base=base)
    critical = _update(2, base=base)
    critical["incident"]["id"] = "inc-2"
    critical["incident"]["impact"] = "critical"
    for event in (first, critical):
        rt.publisher.publish(event)
        assert wait_until(lambda e=event: _settled(rt, e["event_id"]))
    assert [_status(rt, e["event_id"]) for e in (first, critical)] == ["delivered", "delivered"]


def test_a_retrying_update_is_superseded_by_a_newer_one_and_never_sent_after_it(runtime, sink, start_worker):
    rt = runtime(retry_schedule_webhook="1.5,1.5", retry_jitter=0.0)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    sink.script("/h", Reply(503))
    start_worker(rt)
    base = datetime.now(UTC)
    old, new = _update(1, base=base), _update(2, "monitoring", base=base)
    rt.publisher.publish(old)
    assert wait_until(lambda: _status_or_none(rt, old["event_id"]) == "retrying")
    rt.publisher.publish(new)
    assert wait_until(lambda: _status_or_none(rt, new["event_id"]) == "delivered")
    assert wait_until(lambda: _status_or_none(rt, old["event_id"]) == "superseded", timeout=10)
    assert rt.tracker.summary(ref(old))["state"] == "done"
    bodies = [json.loads(r.body)["incident"]["message"] for r in sink.received]
    assert bodies == ["update 1", "update 2"]  # the first try, then only the newer one


def test_a_resolve_supersedes_a_retrying_update_of_the_same_incident(runtime, sink, start_worker):
    rt = runtime(retry_schedule_webhook="1.5,1.5", retry_jitter=0.0)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    sink.script("/h", Reply(500))
    start_worker(rt)
    base = datetime.now(UTC)
    update, resolve = _update(1, base=base), _update(2, "resolved", base=base)
    rt.publisher.publish(update)
    assert wait_until(lambda: _status_or_none(rt, update["event_id"]) == "retrying")
    rt.publisher.publish(resolve)
    assert wait_until(lambda: _status_or_none(rt, update["event_id"]) == "superseded", timeout=10)
    assert [json.loads(r.body)["type"] for r in sink.received] == ["incident_updated", "incident_resolved"]


def test_an_update_that_arrives_after_its_incident_resolved_is_not_sent(runtime, sink, start_worker):
    rt = runtime()
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    start_worker(rt)
    base = datetime.now(UTC)
    resolve, late, earlier = _update(3, "resolved", base=base), _update(2, base=base), _update(1, base=base)
    earlier["incident"]["id"] = "inc-other"  # another incident's older update is still news
    rt.publisher.publish(resolve)
    assert wait_until(lambda: _status_or_none(rt, resolve["event_id"]) == "delivered")
    rt.publisher.publish(late)
    rt.publisher.publish(earlier)
    assert wait_until(lambda: _status_or_none(rt, late["event_id"]) == "superseded")
    assert wait_until(lambda: _status_or_none(rt, earlier["event_id"]) == "delivered")
    assert len(sink.received) == 2


def _status_or_none(rt, event_id: str) -> str | None:
    records = rt.tracker.bucket_records(rt.tracker.find(event_id), 0)
    return next(iter(records.values())).status if records else None


def test_compact_limiter_allows_n_per_moving_window_and_says_when_a_slot_opens(runtime):
    rt = runtime()
    clock = Clock()
    limiter = PackedLimiter(rt.client, rt.keys, rate="3/10 seconds", clock=clock)
    assert limiter.hit_many(PAGE, [5, 5, 5]) == [None, None, None]
    first = clock()
    clock.advance(4)
    [opens] = limiter.hit_many(PAGE, [5])
    assert opens is not None and abs(opens - (first + 10)) < 0.2
    assert limiter.hit_many(PAGE, [6]) == [None]  # another subscriber has its own window
    clock.advance(6.1)
    *allowed, denied = limiter.hit_many(PAGE, [5, 5, 5, 5])  # the old hits left the window
    assert allowed == [None, None, None]
    assert denied is not None and abs(denied - (clock() + 10)) < 0.2
    assert limiter.opens_at(PAGE, [5])[0] is not None
    clock.advance(10.1)
    assert limiter.opens_at(PAGE, [5]) == [None]
    assert limiter.opens_at(PAGE, [5]) == [None]  # peeking takes nothing
    limiter.force(PAGE, [7, 7, 7, 7])
    assert limiter.hit_many(PAGE, [7])[0] is not None
    packed = rt.client.hget(rt.keys.limiter(PAGE, 0), "7")
    assert len(packed) == 12  # the newest three hits, four bytes each


def test_a_digest_that_fails_transiently_is_tried_again_and_loses_nothing(runtime, sink, start_worker):
    clock = Clock()
    rt = runtime(rate_limit="1/10 seconds", schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    start_worker(rt, clock=clock)
    base = datetime.now(UTC)
    first, second = _update(1, base=base), _update(2, "monitoring", base=base)
    for event in (first, second):
        rt.publisher.publish(event)
        assert wait_until(lambda e=event: _settled(rt, e["event_id"]))
    assert _status(rt, second["event_id"]) == "deferred"
    sink.script("/h", Reply(503))  # the digest's first try fails
    clock.advance(10.5)
    assert wait_until(lambda: len(sink.received) == 2)
    assert _status(rt, second["event_id"]) == "deferred"  # still owed, not dropped
    clock.advance(31)  # the digest's retry is due
    assert wait_until(lambda: _status_or_none(rt, second["event_id"]) == "digested")
    digests = [r for r in sink.received if json.loads(r.body)["type"] == "digest"]
    assert len(digests) == 2 and digests[0].headers["webhook-id"] == digests[1].headers["webhook-id"]


def test_whether_each_subscriber_has_deferred_deliveries_is_read_in_one_call_and_follows_the_digest(runtime):
    rt = runtime()
    digests = DigestQueue(rt.client, rt.keys)
    assert digests.has_pending("acme", []) == []
    assert digests.has_pending("acme", [1, 2, 3]) == [False, False, False]
    digests.defer(
        "acme", [Deferral(2, "acme\x1fe1", "i:inc-1", 1000.0), Deferral(3, "acme\x1fe1", "i:inc-1", 1000.0)]
    )
    assert digests.has_pending("acme", [1, 2, 3]) == [False, True, True]
    assert digests.has_pending("other-page", [2]) == [False]
    # The digest carried subscriber 2's deliveries: nothing of its is pending any more.
    assert digests.finish("acme", 2, ["acme\x1fe1"], now=1000.0) is False
    assert digests.has_pending("acme", [3, 2]) == [True, False]
