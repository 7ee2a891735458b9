"""A step that fails while Redis is down is re-enqueued once Redis answers, never dropped."""

from __future__ import annotations

import threading

import dramatiq
import redis

from notifyd.runtime.broker import DurableRetries, make_broker, queue_name
from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.state.keys import Keys
from tests.support.wait import wait_until


def test_retry_enqueue_waits_for_redis_instead_of_dropping_the_message(tmp_path, make_settings):
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    settings = make_settings(redis_url=url)
    broker = make_broker(settings, url)
    lane = queue_name(settings, "normal")
    restarted = EmbeddedRedis(tmp_path / "redis")
    try:

        @dramatiq.actor(broker=broker, actor_name="shard", queue_name=lane)
        def shard() -> None:
            raise RuntimeError("unused")

        message = shard.message()
        retries = DurableRetries(max_retries=5, min_backoff=10, max_backoff=10)
        server.stop()  # Redis goes away while the step fails
        retry = threading.Thread(
            target=retries.after_process_message,
            args=(broker, message),
            kwargs={"exception": redis.ConnectionError("lost")},
        )
        retry.start()
        # With Redis down, the retry keeps trying to enqueue: it neither returns nor gives up.
        assert not wait_until(lambda: not retry.is_alive(), timeout=1.0)
        assert restarted.start() == url
        retry.join(30)
        assert not retry.is_alive()
        assert message.options["retries"] == 1  # one retry counted, however long Redis was away
        keys = Keys(settings.namespace)
        client = redis.Redis.from_url(url)
        try:
            delayed = client.hgetall(keys.queue_messages(f"{lane}.DQ"))
        finally:
            client.close()
        (stored,) = [dramatiq.Message.decode(data) for data in delayed.values()]
        assert (stored.actor_name, stored.options["retries"]) == ("shard", 1)
    finally:
        broker.close()
        restarted.stop()
        server.stop()
