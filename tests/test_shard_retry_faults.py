"""Faults injected between Redis and the shard and retry steps: every delivery still ends final,
nothing is lost, and a subscriber hears an event again only for what was in flight at the fault.

The fault proxy (tests/support/faults.py) sits between the pipeline and Redis. A rule fires on
a command the step sends: ``drop`` before Redis runs it, ``drop_after`` once it ran but before
the reply gets back, ``stall`` for a while. ``PAST_RETRIES`` hits outlast redis-py's own retries
of the command, so a step's own command fails and dramatiq runs its message again; outcomes,
which the dispatcher records, are held and recorded again once Redis answers. (Publish, ingest
and the record of outcomes are in tests/test_ingest_faults.py and tests/test_durability.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.events import incident_event, ref
from tests.support.sink import Reply
from tests.support.wait import summary_of, wait_until

#: One more hit than redis-py's retries of a command: the step sees the error.
PAST_RETRIES = 4
SUBSCRIBERS = 7
LANE = "normal"


@pytest.fixture
def proxied(runtime, sink, fault_proxy) -> Iterator[Any]:
    rt = runtime(
        redis_url=fault_proxy.url,
        shard_size=3,  # three shards: a fault hits one of them, the others run as usual
        retry_schedule_webhook="0.2,0.2,0.2",
        retry_jitter=0.0,
    )
    rt.extras["seqs"] = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/s{i}"}).subscriber.seq
        for i in range(SUBSCRIBERS)
    ]
    yield rt


def _publish(rt) -> dict[str, Any]:
    event = incident_event(priority=LANE)
    assert rt.publisher.publish(event).status == "accepted"
    return event


def _sends(sink) -> dict[str, int]:
    """Requests each subscriber's endpoint received (answered or not)."""
    return {f"/s{i}": len(sink.on(f"/s{i}")) for i in range(SUBSCRIBERS)}


def _all_final(rt, sink, event, *, attempts: int) -> dict[str, int]:
    """Wait until the event is done; every delivery delivered, after ``attempts`` answered tries."""
    assert wait_until(lambda: (summary_of(rt, event["event_id"]) or {}).get("state") == "done", timeout=90), (
        rt.tracker.event_hash(ref(event))
    )
    counts = summary_of(rt, event["event_id"])["counts"]
    assert counts["planned"] == SUBSCRIBERS
    assert counts["delivered"] == SUBSCRIBERS, counts
    assert counts["retrying"] == counts["failed"] == 0
    records = rt.tracker.records(ref(event), rt.extras["seqs"])
    assert len(records) == SUBSCRIBERS and all(r.final for r in records.values())
    sends = _sends(sink)
    # One delivery id per subscriber, whatever was sent again.
    for i in range(SUBSCRIBERS):
        assert len({r.headers["webhook-id"] for r in sink.on(f"/s{i}")}) == 1
    assert all(n >= attempts for n in sends.values()), sends
    return sends


def _fail_first(sink, times: int = 1) -> None:
    for i in range(SUBSCRIBERS):
        sink.script(f"/s{i}", *[Reply(503)] * times)


# -- the shard step -----------------------------------------------------------------------------


def test_redis_dropped_before_a_shard_plans_reruns_it_and_each_subscriber_hears_once(
    proxied, sink, fault_proxy, start_worker
):
    rule = fault_proxy.on(b"\r\nplan\r\n", "drop", times=PAST_RETRIES)
    start_worker(proxied, threads=2)
    event = _publish(proxied)
    sends = _all_final(proxied, sink, event, attempts=1)
    assert rule.hits == PAST_RETRIES
    assert set(sends.values()) == {1}, "nothing was sent before the plan, so nothing twice"


def test_a_lost_reply_to_a_shard_s_done_mark_reruns_it_and_it_resends_nothing(
    proxied, sink, fault_proxy, start_worker
):
    rule = fault_proxy.on(b"shard_done", "drop_after", times=PAST_RETRIES)
    start_worker(proxied, threads=2)
    event = _publish(proxied)
    sends = _all_final(proxied, sink, event, attempts=1)
    assert rule.hits == PAST_RETRIES
    assert set(sends.values()) == {1}, "a re-run shard resends nothing already recorded as delivered"


def test_redis_stalling_in_the_shard_step_delays_it_and_loses_nothing(
    proxied, sink, fault_proxy, start_worker
):
    rule = fault_proxy.on(b"\r\nplan\r\n", "stall", times=1, seconds=1.5)
    start_worker(proxied, threads=2)
    event = _publish(proxied)
    sends = _all_final(proxied, sink, event, attempts=1)
    assert rule.hits == 1 and set(sends.values()) == {1}


def test_every_redis_connection_dropped_while_a_shard_s_sends_are_in_flight_loses_nothing(
    proxied, sink, fault_proxy, start_worker
):
    gate = sink.gate("/s")
    start_worker(proxied, threads=2)
    event = _publish(proxied)
    assert wait_until(lambda: len(sink.arrived) >= 3, timeout=30)
    assert fault_proxy.kill_all() > 0  # as a Redis restart would, with the sends held at the sink
    gate.open()
    sends = _all_final(proxied, sink, event, attempts=1)
    # Only what was in flight (held at the gate) when the connections went can go twice.
    assert sum(sends.values()) - SUBSCRIBERS <= SUBSCRIBERS


# -- the retry step (every endpoint answers 503 first) ------------------------------------------


def test_redis_dropped_as_a_retry_is_enqueued_holds_the_outcomes_and_the_retry_still_comes(
    proxied, sink, fault_proxy, start_worker
):
    # The retry message goes before the record that says "retrying". When Redis drops the
    # enqueue, the dispatcher holds the outcomes and records them again (enqueue first) once
    # Redis answers: the step is not re-run, so nobody hears the event twice.
    _fail_first(sink)
    rule = fault_proxy.on(f"retry_{LANE}".encode(), "drop", times=PAST_RETRIES)
    start_worker(proxied, threads=2)
    event = _publish(proxied)
    sends = _all_final(proxied, sink, event, attempts=2)
    assert rule.hits == PAST_RETRIES
    assert set(sends.values()) == {2}, sends


def test_redis_dropped_as_a_retry_step_reads_its_records_runs_it_again_and_loses_nothing(
    proxied, sink, fault_proxy, start_worker
):
    _fail_first(sink)
    event = incident_event(priority=LANE)
    key = proxied.keys.deliveries(ref(event), 0).encode()
    # The retry step's first command: HMGET of the records it is due to send.
    rule = fault_proxy.on(b"HMGET\r\n$%d\r\n%s\r\n" % (len(key), key), "drop", times=PAST_RETRIES)
    start_worker(proxied, threads=2)
    assert proxied.publisher.publish(event).status == "accepted"
    sends = _all_final(proxied, sink, event, attempts=2)
    assert rule.hits == PAST_RETRIES
    assert set(sends.values()) == {2}, "the failed retry step had sent nothing: nothing goes twice"


def test_a_lost_reply_to_a_retry_step_s_record_reruns_it_and_it_resends_nothing(
    proxied, sink, fault_proxy, start_worker
):
    _fail_first(sink)
    # The record of a delivery on the second attempt ("d2,<offset>"): it ran, its reply is lost.
    rule = fault_proxy.on(b"\r\nd2,", "drop_after", times=PAST_RETRIES)
    start_worker(proxied, threads=2)
    event = _publish(proxied)
    _all_final(proxied, sink, event, attempts=2)
    # The first write ran (the records are final) before its reply was lost; the writes again
    # that follow, and anything they could set off, may still be under way.
    assert wait_until(lambda: rule.hits == PAST_RETRIES, timeout=30)
    sends = _sends(sink)
    assert set(sends.values()) == {2}, "what the retry recorded as delivered is not sent again"
    records = proxied.tracker.records(ref(event), proxied.extras["seqs"])
    assert {r.attempts for r in records.values()} == {2}


def test_redis_stalling_in_the_retry_step_delays_it_and_loses_nothing(
    proxied, sink, fault_proxy, start_worker
):
    _fail_first(sink)
    rule = fault_proxy.on(b"\r\nd2,", "stall", times=1, seconds=1.5)
    start_worker(proxied, threads=2)
    event = _publish(proxied)
    sends = _all_final(proxied, sink, event, attempts=2)
    assert rule.hits == 1 and set(sends.values()) == {2}
