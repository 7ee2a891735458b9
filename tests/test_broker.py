"""A step that fails while Redis is down is re-enqueued once Redis answers, never dropped."""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.stub import StubBroker

from notifyd.runtime.broker import DurableRetries


def test_retry_enqueue_waits_for_redis_instead_of_dropping_the_message(monkeypatch):
    broker = StubBroker()
    retries = DurableRetries(max_retries=5, min_backoff=10, max_backoff=10)

    @dramatiq.actor(broker=broker, actor_name="shard")
    def shard() -> None:
        raise RuntimeError("unused")

    message = shard.message()
    calls: list[int | None] = []
    real_enqueue = broker.enqueue

    def flaky_enqueue(msg, *, delay=None):  # type: ignore[no-untyped-def]
        calls.append(delay)
        if len(calls) < 3:
            raise redis.ConnectionError("Connection refused")
        return real_enqueue(msg, delay=delay)

    monkeypatch.setattr(broker, "enqueue", flaky_enqueue)
    retries.after_process_message(broker, message, exception=redis.ConnectionError("lost"))
    assert len(calls) == 3
    assert message.options["retries"] == 1  # one retry counted, however long Redis was away
    assert broker.queues["default.DQ"].qsize() == 1
