"""ingest: event -> status store -> filters -> shards (seq ranges) on the event's lane.

Shard 0 runs right here, after the first few others are on the queue: it
saves the first deliveries a queue hop. Ingest enqueues only the shards below
``shards_enqueued`` (the event's window, ``shard_queue_window``); every shard,
as it starts and before its message is acked, enqueues the shard
``shards_enqueued`` after it (:class:`ShardChain`). So a fan-out keeps a few
messages in its lane's queue, not all of them, and another event's ingest
waits behind a few shards rather than behind the whole fan-out. Each shard
message is enqueued at most once, by one script with its mark, so a re-run
(a redelivered shard or ingest) neither starts a second chain nor loses one:
the successor was enqueued before the first run's ack. The window is written
with ``shards_total``, atomically, so every shard sees it; an event planned
before the window existed (no ``shards_enqueued``) gets all its shards
enqueued here, as it used to.

The status store's seen-set decides whether a peer region already took the
event; a mark counts only with the event's effect behind it in the store
(``store.events.shows_event``), so a peer cannot pre-seed ids. Its mark is
written by this ingest too, so before applying, ingest claims the event in
Redis (``store_claim`` on the event record). A re-run that finds its own
claim knows the seen mark is its own: a crash between the store write and the
shard count never turns an accepted event into a duplicate.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from notifyd.models import Event
from notifyd.pipeline.events import StatusStoreLike
from notifyd.pipeline.filters import INGEST_FILTERS, EventView, IngestFilter, StoreVerdict, first_reason
from notifyd.pipeline.metrics import EVENTS_INGESTED, UNBACKED_SEEN
from notifyd.pipeline.steps import DELIVER_SHARD, StepQueue, step_message
from notifyd.state.incident_events import IncidentEvents
from notifyd.state.keys import Keys
from notifyd.state.scripts import register
from notifyd.state.subscribers import SubscriberRepo
from notifyd.state.tracking import Tracker

log = logging.getLogger("notifyd.pipeline")

#: The event-record field: ingest enqueues the shards below it; shard i enqueues shard i + it.
WINDOW_FIELD = "shards_enqueued"
#: The event-record field an ingest writes before it marks the event seen in the status store.
CLAIM_FIELD = "store_claim"

ShardRunner = Callable[[str, int, int, int], None]


class Ingest:
    def __init__(
        self,
        *,
        client: redis.Redis,
        keys: Keys,
        tracker: Tracker,
        subscribers: SubscriberRepo,
        queue: StepQueue,
        store: StatusStoreLike | None,
        shard_size: int,
        shard_window: int,
        chain: ShardChain,
        run_shard: ShardRunner,
        incident_events: IncidentEvents,
        on_maintenance: Callable[[Event], None] | None = None,
        filters: tuple[IngestFilter, ...] = INGEST_FILTERS,
    ) -> None:
        self.client = client
        self.keys = keys
        self.tracker = tracker
        self.subscribers = subscribers
        self.queue = queue
        self.store = store
        self.shard_size = shard_size
        self.shard_window = shard_window
        self.chain = chain
        self.run_shard = run_shard
        self.incident_events = incident_events
        self.on_maintenance = on_maintenance
        self.filters = filters

    def __call__(self, ref: str) -> None:
        """Ingest the event kept under ``ref`` (``keys.event_ref``: its page and its id)."""
        h = self.tracker.event_hash(ref)
        if h is None or "body" not in h:
            log.warning("ingest: event %s has expired or was never accepted", ref)
            return
        event = Event.model_validate_json(h["body"])
        if "shards_total" not in h:
            shards = self._plan(ref, event, h)
            if shards == 0:
                self.tracker.shard_done(ref, 0)  # runs the completion check
                return
            h = self.tracker.event_hash(ref) or h
        self._enqueue_shards(ref, event, h)

    def _plan(self, ref: str, event: Event, h: dict[str, str]) -> int:
        EVENTS_INGESTED.labels(event.lane).inc()
        verdict = self._apply_to_store(ref, event, h)
        if event.maintenance is not None and self.on_maintenance is not None and not verdict.duplicate:
            self.on_maintenance(event)  # its reminder and transitions, before anything is sent
        reason = first_reason(event, verdict, self.filters)
        view = EventView.of(event)
        if view.kind == "incident" and view.about is not None and not reason:
            # Before any shard runs: an older update's retry must see that this one exists.
            self.incident_events.note(event.page_id, view.about, ref, event.occurred_at.timestamp())
        top = 0 if reason else self.subscribers.max_seq(event.page_id)
        shards = math.ceil(top / self.shard_size)
        now = f"{time.time():.3f}"
        fields: dict[str, Any] = {
            "shards_total": shards,
            "seq_top": top,
            "started_at": now,
            WINDOW_FIELD: min(shards, self.shard_window),
        }
        if reason:
            fields["filtered"] = reason
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.event(ref), mapping=fields)
        # publish.lua listed the event when it accepted it; this lists one accepted before it did.
        pipe.zadd(self.keys.page_events(event.page_id), {ref: float(now)}, nx=True)
        pipe.execute()
        return shards

    def _apply_to_store(self, ref: str, event: Event, h: dict[str, str]) -> StoreVerdict:
        """Apply the event to the status store, telling a peer's seen mark from our own."""
        if self.store is None:
            return StoreVerdict()
        if CLAIM_FIELD not in h:
            body = json.loads(h["body"])
            if self.store.taken(body):
                return StoreVerdict(duplicate=True)  # a peer region took it; we never claimed it
            self.client.hset(self.keys.event(ref), CLAIM_FIELD, f"{time.time():.3f}")
            result = self.store.apply_event(body, require_effect=True)
            if getattr(result, "unbacked", False):
                UNBACKED_SEEN.inc()  # a mark with nothing of the event behind it: not a duplicate
            return StoreVerdict(
                bool(getattr(result, "duplicate", False)), bool(getattr(result, "stale", False))
            )
        # An earlier run of this ingest claimed the event: a seen mark is its own, not a peer's.
        result = self.store.apply_event(json.loads(h["body"]), require_effect=True)
        if getattr(result, "duplicate", False):
            log.info("ingest: %s was applied to the store by an earlier attempt; resuming", event.event_id)
        return StoreVerdict(duplicate=False, stale=bool(getattr(result, "stale", False)))

    def _enqueue_shards(self, ref: str, event: Event, h: dict[str, str]) -> None:
        shards = int(h["shards_total"])
        top = int(h["seq_top"])
        size = self.shard_size
        if WINDOW_FIELD not in h:
            # Planned before shards enqueued their successors: nobody else enqueues the rest.
            self.client.hset(self.keys.event(ref), WINDOW_FIELD, shards)
            window = shards
        else:
            window = min(shards, int(h[WINDOW_FIELD]))
        # A re-run finds the window marked enqueued and enqueues none of it again.
        for shard in range(1, window):
            self.chain.enqueue(ref, event.lane, shard, shard * size, min(top, (shard + 1) * size))
        self.run_shard(ref, 0, 0, min(top, size))


class ShardChain:
    """Enqueues an event's shard messages, each at most once (see the module docstring).

    The mark (the event's enqueued-shards bitmap) and the message are written by one script,
    so a crash leaves both or neither: a shard re-run (its message redelivered) or an ingest
    re-run does not start a second chain, and no successor is marked but missing.
    :meth:`__call__` runs at the start of a shard's step, before anything that can fail, so
    its successor is on the queue before the shard's message is acked.
    """

    def __init__(self, *, client: redis.Redis, keys: Keys, ttl_s: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s
        self._script = register(client, "enqueue_shard")

    def enqueue(self, ref: str, lane: str, shard: int, start: int, end: int) -> bool:
        message = step_message(self.keys, DELIVER_SHARD, lane, (ref, shard, start, end))
        redis_id = str(uuid.uuid4())
        message = message.copy(options={"redis_message_id": redis_id})
        queue = self.keys.queue_name(lane)
        keys = [
            self.keys.event_shards_enqueued(ref),
            self.keys.queue_messages(queue),
            self.keys.queue(queue),
        ]
        return bool(self._script(keys=keys, args=[shard, self.ttl_s, redis_id, message.encode()]))

    def __call__(self, ref: str, lane: str, shard: int, start: int, end: int) -> None:
        values = self.client.hmget(self.keys.event(ref), ["shards_total", WINDOW_FIELD, "seq_top"])
        if any(v is None for v in values):
            return  # expired, or planned before the window existed (ingest enqueued every shard)
        shards, window, top = (int(v) for v in values)
        following = shard + window
        if window <= 0 or following >= shards:
            return
        # Shards below the last are full: shard 0 ends at the size, shard i starts at i * size.
        size = start // shard if shard else end
        self.enqueue(ref, lane, following, following * size, min(top, (following + 1) * size))
