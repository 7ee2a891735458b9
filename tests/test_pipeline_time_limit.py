"""A shard stopped by dramatiq's time limit mid-send: its next run sends nothing twice that was queued.

The time limit raises inside the worker thread while the shard waits for its
sends. Deliveries still queued in the process's dispatcher must then never
start there, because the shard's next run (dramatiq retries it) sends every
delivery that is not recorded: had they stayed queued, they would go out twice.

dramatiq starts its time-limit thread on ``process_boot``, which only its own
CLI emits; ``notifyd worker`` does not, and a stuck step is fenced by the
async runner's step deadline instead. The test starts it, as dramatiq's CLI does.
"""

from __future__ import annotations

from collections import Counter

from dramatiq.middleware import TimeLimit

from notifyd.pipeline import actors
from tests.support.events import incident_event
from tests.support.wait import wait_done, wait_until


def test_a_shard_stopped_by_the_time_limit_sends_what_it_had_queued_once(
    runtime, sink, start_worker, monkeypatch
):
    # The shard waits for its sends far longer than its time limit allows.
    monkeypatch.setattr(actors, "SHARD_TIME_LIMIT_MS", 1500)
    rt = runtime(
        dispatch_window=2, dispatch_reserve=0, handoff_after_ms=60_000, shard_size=100, webhook_timeout_s=60.0
    )
    for i in range(10):
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/g/{i}"})
    gate = sink.gate("/g/")
    worker = start_worker(rt, threads=1)
    limit = next(m for m in rt.broker.middleware if isinstance(m, TimeLimit))
    limit.after_process_boot(rt.broker)
    event = incident_event(priority="normal")
    rt.publisher.publish(event)
    assert sink.wait_for(lambda: gate.waiting == 2)  # two in flight, eight queued in the dispatcher
    dispatcher = worker.holder.get().dispatcher
    assert dispatcher.stats()["waiting"] == 8
    # The time limit stops the shard: what it had queued leaves the dispatcher unsent.
    assert wait_until(lambda: dispatcher.stats()["withdrawn"] >= 8, timeout=20)
    held = set(sink.arrivals)
    assert len(held) == 2  # nothing queued started when the slots it waited for were still held

    gate.open()
    summary = wait_done(rt, event["event_id"], timeout=60)
    assert summary["counts"]["delivered"] == 10
    received = Counter(sink.arrivals)
    # The two in flight when the limit hit may go twice (the next run cannot know they went);
    # the eight that were queued go exactly once.
    for path, count in received.items():
        assert count == 1 or path in held, (path, count)
    assert set(received) == {f"/g/{i}" for i in range(10)}
