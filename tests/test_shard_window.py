"""A fan-out keeps only its window of shard messages queued; each shard enqueues the next.

So another event's ingest waits behind a few shards, not behind the whole fan-out, and
every shard still runs: the chain is extended before a shard's message is acked.
"""

from __future__ import annotations

from typing import Any

from dramatiq import Message

from notifyd.models import Event
from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.engine import Engine
from notifyd.pipeline.steps import DELIVER_SHARD, INGEST, actor_name
from notifyd.runtime.worker import InProcessWorker
from tests.conftest import wait_until
from tests.support.events import incident_event, ref

BIG = 20  # subscribers of the fan-out: 10 shards of 2
SMALL = 3
WINDOW = 2


def _queued(rt: Any, lane: str) -> list[Message[Any]]:
    q = rt.keys.queue_name(lane)
    ids = rt.client.lrange(rt.keys.queue(q), 0, -1)
    raw = rt.client.hmget(rt.keys.queue_messages(q), ids) if ids else []
    return [Message.decode(r) for r in raw if r is not None]


def _seed(rt: Any) -> None:
    for i in range(BIG):
        rt.subscribers.add("big", {"channel": "email", "target": f"big{i}@example.com"})
    for i in range(SMALL):
        rt.subscribers.add("small", {"channel": "email", "target": f"small{i}@example.com"})


def test_a_small_pages_ingest_is_queued_behind_the_window_not_the_whole_fanout(
    runtime, recorder, start_worker
):
    rt = runtime(shard_size=2, shard_queue_window=WINDOW)
    _seed(rt)
    engine = Engine(rt, AdapterPool(rt.settings))
    big = incident_event("big")
    lane = Event.model_validate(big).lane
    assert rt.publisher.publish(big).status == "accepted"
    engine.ingest(ref(big))  # a worker's run of the queued ingest message; it stays queued
    # That run's shard 0 returns once its two sends have started; they are recorded a moment
    # later. The worker below runs the ingest message again (as after a crash): a re-run sends
    # only what is not recorded, so let the first run's outcomes land first.
    assert wait_until(lambda: rt.tracker.summary(ref(big))["counts"]["delivered"] == 2, 30)

    shard_messages = [m for m in _queued(rt, lane) if m.actor_name == actor_name(DELIVER_SHARD, lane)]
    # Ingest enqueued shard 1; shard 0 (run inline) enqueued shard 2. Not shards 3..9.
    assert sorted(m.args[1] for m in shard_messages) == [1, 2]

    small = incident_event("small")
    assert rt.publisher.publish(small).status == "accepted"
    order = [(m.actor_name, m.args[0]) for m in _queued(rt, lane)]
    assert order.index((actor_name(INGEST, lane), ref(small))) <= WINDOW + 1

    start_worker(rt, threads=2)
    for event in (big, small):
        assert wait_until(lambda e=event: (rt.tracker.summary(ref(e)) or {}).get("state") == "done", 60)
    big_summary = rt.tracker.summary(ref(big))
    assert big_summary["counts"]["delivered"] == BIG
    assert rt.tracker.summary(ref(small))["counts"]["delivered"] == SMALL
    # Every subscriber heard each event once: no shard was lost, none sent twice.
    assert len(recorder.for_event(big["event_id"])) == BIG
    assert len({s.delivery_id for s in recorder.for_event(big["event_id"])}) == BIG
    engine.close()


def test_a_shard_run_again_after_its_successor_finished_does_not_enqueue_it_again(runtime, recorder):
    rt = runtime(shard_size=2, shard_queue_window=WINDOW)
    _seed(rt)
    big = incident_event("big")
    lane = Event.model_validate(big).lane
    assert rt.publisher.publish(big).status == "accepted"
    worker = InProcessWorker.start(rt, threads=2)
    try:
        assert wait_until(lambda: (rt.tracker.summary(ref(big)) or {}).get("state") == "done", 60)
    finally:
        worker.stop()

    engine = Engine(rt, AdapterPool(rt.settings))
    engine.deliver_shard(ref(big), 1, 2, 4)  # a redelivered shard 1 (e.g. its ack was lost)
    assert _queued(rt, lane) == []
    assert len(recorder.for_event(big["event_id"])) == BIG
    engine.close()
