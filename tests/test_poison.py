"""A poison message (one that fails however often it runs) is dead-lettered, never retried forever."""

from __future__ import annotations

import time

import dramatiq
import pytest

from notifyd.pipeline.steps import INGEST, step_message
from notifyd.runtime.broker import MAX_CRASH_RETRIES
from notifyd.state.queues import lane_stats
from tests.support.events import incident_event
from tests.support.wait import wait_done, wait_until


def _lane(rt, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in lane_stats(rt.client, rt.keys) if s.lane == name)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_poison_message_lands_in_the_dead_letter_index_after_its_retries_and_stays_there(
    runtime, start_worker, sink
):
    rt = runtime()
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/after"})
    # An ingest step whose arguments no ingest can take: it raises on every run. Its own
    # min_backoff (a dramatiq message option) makes its crash retries 40 ms .. 640 ms apart instead
    # of 0.5 s .. 16 s: the same retries through the same delay queue, in a second instead of ~25 s,
    # and a retry that should not happen would now come well inside the wait below.
    poison = step_message(rt.keys, INGEST, "normal", ("ev-poison", "no", "such", "arguments"), min_backoff=20)
    rt.broker.enqueue(poison)
    start_worker(rt, threads=2)
    assert wait_until(lambda: _lane(rt, "normal").dead_messages == 1, timeout=120)
    dead_queue = rt.keys.queue_messages(f"{rt.keys.queue_name('normal')}.XQ")
    (stored,) = [dramatiq.Message.decode(data) for data in rt.client.hgetall(dead_queue).values()]
    assert stored.message_id == poison.message_id
    assert stored.options["retries"] == MAX_CRASH_RETRIES  # tried, then given up on
    # Given up for good: nothing of it is queued or delayed, and it does not run again...
    time.sleep(2.0)
    lane = _lane(rt, "normal")
    assert (lane.ready, lane.delayed, lane.dead_messages) == (0, 0, 1)
    (again,) = [dramatiq.Message.decode(data) for data in rt.client.hgetall(dead_queue).values()]
    assert again.options["retries"] == MAX_CRASH_RETRIES
    # ...and the lane it sat on still delivers.
    event = incident_event(priority="normal")
    rt.publisher.publish(event)
    assert wait_done(rt, event["event_id"])["counts"]["delivered"] == 1
