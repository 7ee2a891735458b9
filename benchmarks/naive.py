"""The baseline: a naive one-dramatiq-message-per-delivery design on the same broker.

    naive_fanout(event_id, page_id)   walks the page's subscribers and enqueues one
                                      ``naive_deliver`` message per subscriber (``broker.enqueue`` each)
    naive_deliver(event_id, seq, subscriber_id, channel, target)
                                      one ``limits`` moving-window hit (a single call),
                                      an instant send, and one HSET tracking record per
                                      delivery (+ an HINCRBY of the event's counter,
                                      pipelined with the HSET: one round trip)

Keys: ``<ns>:naive:ev:<event_id>`` (counters) and ``<ns>:naive:dl:<event_id>:<seq>`` (one hash
per delivery). Queue: ``<ns>.naive``. It reads subscribers from the same store as notifyd
(``SubscriberRepo.range``, a bucket at a time), so only the fanout/delivery design differs.
The "instant send" builds the channel ``Message`` (delivery id included) and returns
``delivered`` without an event-loop hop, which is, if anything, generous to the baseline.

    naive_fanout(event_id, page_id, True) enqueues ``naive_http_deliver`` messages instead:
    naive_http_deliver(event_id, page_id, seq, subscriber_id, channel, target)
                                      loads its subscriber (its sealed secret is opened as notifyd
                                      opens it), the same rate-limit hit and record, around a real
                                      signed Standard Webhooks POST with one ``httpx.Client`` per
                                      worker thread (keep-alive), classified by notifyd's own rules

That is the design the end-to-end benchmark (``bench_delivery.py``) compares with: the
obvious way to send webhooks with dramatiq, against the same sink, in the same run.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq import Message as QueueMessage
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from channels.base import Message, Notification, Outcome, OutcomeKind
from notifyd.ids import delivery_id
from notifyd.runtime.wiring import Runtime
from notifyd.state.keys import BUCKET


def queue_name(ns: str) -> str:
    return f"{ns}.naive"


def event_key(ns: str, event_id: str) -> str:
    return f"{ns}:naive:ev:{event_id}"


def delivery_key(ns: str, event_id: str, seq: int) -> str:
    return f"{ns}:naive:dl:{event_id}:{seq}"


def tracking_record(subscriber_id: str, channel: str, status: str) -> dict[str, Any]:
    """What a naive design keeps per delivery: one small hash."""
    return {
        "subscriber_id": subscriber_id,
        "channel": channel,
        "status": status,
        "attempts": 1,
        "updated_at": f"{time.time():.3f}",
    }


_NOTIFICATION = Notification(
    event_id="",
    event_type="incident_created",
    page_id="",
    occurred_at="",
    title="bench",
    status="investigating",
    impact="minor",
    message="",
    components=(),
    payload={},
)


def declare_actors(runtime: Runtime) -> dict[str, dramatiq.Actor]:
    ns = runtime.settings.namespace
    broker = runtime.broker
    client: redis.Redis = runtime.client
    item = parse(runtime.settings.rate_limit)
    storage = RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix=f"{ns}:naive-rl")
    limiter = MovingWindowRateLimiter(storage)
    queue = queue_name(ns)

    def naive_fanout(event_id: str, page_id: str, http: bool = False) -> None:
        top = runtime.subscribers.max_seq(page_id)
        client.hset(event_key(ns, event_id), "planned", top)
        for start in range(0, top, BUCKET):
            for sub in runtime.subscribers.range(page_id, start, min(top, start + BUCKET)):
                args: tuple[Any, ...] = (sub.seq, sub.id, sub.channel, runtime.subscribers.target_of(sub))
                broker.enqueue(
                    QueueMessage(
                        queue_name=queue,
                        actor_name="naive_http_deliver" if http else "naive_deliver",
                        args=(event_id, page_id, *args) if http else (event_id, *args),
                        kwargs={},
                        options={},
                    )
                )

    def naive_deliver(event_id: str, seq: int, subscriber_id: str, channel: str, target: str) -> None:
        if limiter.hit(item, subscriber_id, channel):
            message = Message(
                delivery_id=delivery_id(event_id, subscriber_id, channel),
                subscriber_id=subscriber_id,
                target=target,
                notification=_NOTIFICATION,
            )
            outcome = Outcome.delivered() if message.delivery_id else Outcome.transient("?")
            status = "delivered" if outcome.kind is OutcomeKind.delivered else "retrying"
        else:
            status = "rate_limited"
        pipe = client.pipeline(transaction=False)
        pipe.hset(delivery_key(ns, event_id, seq), mapping=tracking_record(subscriber_id, channel, status))
        pipe.hincrby(event_key(ns, event_id), status, 1)
        pipe.execute()

    local = threading.local()

    def naive_http_deliver(
        event_id: str, page_id: str, seq: int, subscriber_id: str, channel: str, target: str
    ) -> None:
        import httpx

        from channels.webhook import classify, sign

        if limiter.hit(item, subscriber_id, channel):
            http = getattr(local, "client", None)
            if http is None:
                http = local.client = httpx.Client(timeout=10.0, follow_redirects=False)
            msg_id = delivery_id(event_id, subscriber_id, channel)
            body = json.dumps({"type": "incident_created", "event_id": event_id, "page_id": "naive",
                               "incident": {"title": "Database outage", "status": "investigating"}},
                              separators=(",", ":")).encode()  # fmt: skip
            found = runtime.subscribers.range_many(page_id, [seq])
            secret = runtime.subscribers.secret_of(found[0]) if found else None
            ts = int(time.time())
            headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "content-type": "application/json"}
            if secret:
                headers["webhook-signature"] = sign(secret, msg_id, ts, body)
            try:
                answer = http.post(target, content=body, headers=headers)
                outcome = classify(answer.status_code, answer.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                outcome = Outcome.transient(type(exc).__name__)
            status = {OutcomeKind.delivered: "delivered", OutcomeKind.transient: "retrying"}.get(
                outcome.kind, "failed"
            )
        else:
            status = "rate_limited"
        pipe = client.pipeline(transaction=False)
        pipe.hset(delivery_key(ns, event_id, seq), mapping=tracking_record(subscriber_id, channel, status))
        pipe.hincrby(event_key(ns, event_id), status, 1)
        pipe.execute()

    actors = {}
    for fn in (naive_fanout, naive_deliver, naive_http_deliver):
        actors[fn.__name__] = dramatiq.Actor(
            fn, broker=broker, actor_name=fn.__name__, queue_name=queue, priority=0, options={}
        )
    return actors


def start_fanout(runtime: Runtime, event_id: str, page_id: str, *, http: bool = False) -> None:
    ns = runtime.settings.namespace
    runtime.broker.enqueue(
        QueueMessage(
            queue_name=queue_name(ns),
            actor_name="naive_fanout",
            args=(event_id, page_id, http),
            kwargs={},
            options={},
        )
    )


def finished(client: redis.Redis, ns: str, event_id: str) -> tuple[int, int]:
    """(final deliveries so far, planned) of a naive fanout."""
    h = client.hgetall(event_key(ns, event_id))
    done = sum(int(h.get(k, 0)) for k in (b"delivered", b"rate_limited", b"retrying", b"failed"))
    return done, int(h.get(b"planned", -1))
