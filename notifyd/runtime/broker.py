"""Dramatiq on Redis: one queue per priority, namespaced under NOTIFYD_NAMESPACE.

Dramatiq's Redis broker has no per-message priority, so each priority is a
queue of its own, and each pipeline step has one actor per priority whose
dramatiq ``priority`` makes a worker run critical work first among what it
has prefetched.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq.broker import Consumer
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from channels.backoff import Backoff
from notifyd.runtime.settings import PRIORITIES, Settings

#: dramatiq priorities: lower runs first.
LANE_PRIORITY = {"critical": 0, "high": 10, "normal": 20, "low": 30}
#: One maintenance pass (requeue a dead worker's messages) per ~20 broker calls
#: instead of dramatiq's one per thousand, so a killed worker's shard comes back
#: within seconds of its heartbeat timeout, not minutes.
MAINTENANCE_CHANCE = 50_000
#: A poison message is retried this many times by dramatiq, then dead-lettered.
MAX_CRASH_RETRIES = 5


class Heartbeat(Middleware):
    """Beat for the whole process from a thread of its own.

    Dramatiq only beats when a consumer polls; a worker whose consumers are all
    full for longer than the heartbeat timeout would look dead and have its
    messages requeued under it.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._beats: list[threading.Thread] = []

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, RedisBroker)
        self._stop.clear()
        key = f"{broker.namespace}:__heartbeats__"

        def beat() -> None:
            while not self._stop.wait(self.interval_s):
                # Redis down: dramatiq itself reports it on its next call.
                with contextlib.suppress(Exception):
                    broker.client.zadd(key, {broker.broker_id: int(time.time() * 1000)})

        thread = threading.Thread(target=beat, name="notifyd-heartbeat", daemon=True)
        thread.start()
        self._beats.append(thread)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        # A beat still in flight would reconnect after the runtime disconnected the broker's
        # pool, and leave that socket open. Bounded: a stalled Redis must not hang the stop.
        for thread in self._beats:
            thread.join(timeout=5)
        self._beats.clear()


class NotifydBroker(RedisBroker):
    """dramatiq's Redis broker, plus recovery of messages stranded by a lost connection.

    When its connection drops, a dramatiq consumer thread throws away the
    messages it had prefetched, but their ids stay in this process's ack set.
    Maintenance only requeues the ack sets of *dead* processes, and this one is
    alive and heartbeating, so those messages would wait for a restart that
    may never come. Whenever a consumer is recreated, we requeue our own acks
    for its queue, except the messages a worker thread is executing now.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._consumers_made: dict[str, int] = {}
        self._executing: set[str] = set()
        self._executing_lock = threading.Lock()
        # First in the list, so its after-hook runs last: a message stays "executing"
        # until DurableRetries has re-enqueued it.
        first = type(self.middleware[0]) if self.middleware else None
        self.add_middleware(_TrackExecuting(self), before=first)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        made = self._consumers_made.get(queue_name, 0)
        self._consumers_made[queue_name] = made + 1
        if made:
            self.requeue_orphans(queue_name)
        return super().consume(queue_name, prefetch, timeout)

    def requeue_orphans(self, queue_name: str) -> int:
        key = f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}"
        try:
            held = {m.decode() for m in self.client.smembers(key)}
            with self._executing_lock:
                orphans = sorted(held - self._executing)
            if orphans:
                self.do_requeue(queue_name, *orphans)
            return len(orphans)
        except redis.ConnectionError:
            return 0  # still down: the consumer fails again and we come back here


class _TrackExecuting(Middleware):
    def __init__(self, broker: NotifydBroker) -> None:
        self.broker = broker

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        with self.broker._executing_lock:
            self.broker._executing.add(message.options.get("redis_message_id", ""))

    def after_process_message(self, broker: dramatiq.Broker, message: Any, **kwargs: Any) -> None:
        with self.broker._executing_lock:
            self.broker._executing.discard(message.options.get("redis_message_id", ""))

    after_skip_message = after_process_message


class DurableRetries(Retries):
    """dramatiq's Retries, whose re-enqueue waits out a Redis outage.

    A step that failed because Redis went away is re-enqueued by Retries, and
    that enqueue fails too. dramatiq logs it and then acks the original once
    Redis is back: the message is gone. Here the enqueue is retried until it
    lands; until then the original stays in the ack set, so a worker killed
    meanwhile still has it requeued by maintenance.
    """

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        super().after_process_message(_PatientEnqueue(broker), message, result=result, exception=exception)


class _PatientEnqueue:
    #: Redis may be restarting: try again after 0.1 s, 0.2 s, ... then every 2 s.
    BACKOFF = Backoff(first=0.1, cap=2.0)

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        pause = None
        while True:
            try:
                return self._broker.enqueue(message, delay=delay)
            except (redis.ConnectionError, redis.TimeoutError):
                pause = self.BACKOFF.next(pause)
                time.sleep(pause)


def make_broker(settings: Settings, url: str) -> RedisBroker:
    middleware = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        DurableRetries(max_retries=MAX_CRASH_RETRIES, min_backoff=500, max_backoff=30_000),
        Heartbeat(interval_s=settings.heartbeat_timeout_ms / 3000),
    ]
    broker = NotifydBroker(
        url=url,
        namespace=settings.namespace,
        middleware=middleware,
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        maintenance_chance=MAINTENANCE_CHANCE,
    )
    for lane in PRIORITIES:
        broker.declare_queue(queue_name(settings, lane))
    return broker


def queue_name(settings: Settings, lane: str) -> str:
    return f"{settings.namespace}.{lane}"
