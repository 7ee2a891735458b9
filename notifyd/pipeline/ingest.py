"""ingest: event -> status store -> filters -> shards (seq ranges) on the event's lane.

Shard 0 runs right here, after the others are on the queue: it saves the
first deliveries a queue hop. An ingest that crashed part-way resumes from
the shards it had enqueued (``shards_enqueued``).

The status store's seen-set decides whether a peer region already took the
event. Its mark is written by this ingest too, so before applying, ingest
claims the event in Redis (``store_claim`` on the event record). A re-run
that finds its own claim knows the seen mark is its own: a crash between the
store write and the shard count never turns an accepted event into a
duplicate.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis

from notifyd.models import Event
from notifyd.pipeline.events import StatusStoreLike
from notifyd.pipeline.filters import INGEST_FILTERS, EventView, IngestFilter, StoreVerdict, first_reason
from notifyd.pipeline.metrics import EVENTS_INGESTED
from notifyd.pipeline.steps import DELIVER_SHARD, StepQueue
from notifyd.state.incident_events import IncidentEvents
from notifyd.state.keys import Keys
from notifyd.state.subscribers import SubscriberRepo
from notifyd.state.tracking import Tracker

log = logging.getLogger("notifyd.pipeline")

#: Shard messages enqueued per progress mark (``shards_enqueued``).
ENQUEUE_BATCH = 200
#: The event-record field an ingest writes before it marks the event seen in the status store.
CLAIM_FIELD = "store_claim"
#: Recent events listed per page.
PAGE_EVENTS_KEPT = 1000

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
        self.run_shard = run_shard
        self.incident_events = incident_events
        self.on_maintenance = on_maintenance
        self.filters = filters

    def __call__(self, event_id: str) -> None:
        h = self.tracker.event_hash(event_id)
        if h is None or "body" not in h:
            log.warning("ingest: event %s has expired or was never accepted", event_id)
            return
        event = Event.model_validate_json(h["body"])
        if "shards_total" not in h:
            shards = self._plan(event, h)
            if shards == 0:
                self.tracker.shard_done(event_id, 0)  # runs the completion check
                return
            h = self.tracker.event_hash(event_id) or h
        self._enqueue_shards(event, h)

    def _plan(self, event: Event, h: dict[str, str]) -> int:
        EVENTS_INGESTED.labels(event.lane).inc()
        verdict = self._apply_to_store(event, h)
        if event.maintenance is not None and self.on_maintenance is not None and not verdict.duplicate:
            self.on_maintenance(event)  # its reminder and transitions, before anything is sent
        reason = first_reason(event, verdict, self.filters)
        view = EventView.of(event)
        if view.kind == "incident" and view.about is not None and not reason:
            # Before any shard runs: an older update's retry must see that this one exists.
            self.incident_events.note(
                event.page_id, view.about, event.event_id, event.occurred_at.timestamp()
            )
        top = 0 if reason else self.subscribers.max_seq(event.page_id)
        shards = math.ceil(top / self.shard_size)
        now = f"{time.time():.3f}"
        fields: dict[str, Any] = {"shards_total": shards, "seq_top": top, "started_at": now}
        if reason:
            fields["filtered"] = reason
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.event(event.event_id), mapping=fields)
        pipe.zadd(self.keys.page_events(event.page_id), {event.event_id: float(now)})
        pipe.zremrangebyrank(self.keys.page_events(event.page_id), 0, -PAGE_EVENTS_KEPT - 1)
        pipe.execute()
        return shards

    def _apply_to_store(self, event: Event, h: dict[str, str]) -> StoreVerdict:
        """Apply the event to the status store, telling a peer's seen mark from our own."""
        if self.store is None:
            return StoreVerdict()
        if CLAIM_FIELD not in h:
            if self.store.seen(event.event_id):
                return StoreVerdict(duplicate=True)  # a peer region took it; we never claimed it
            self.client.hset(self.keys.event(event.event_id), CLAIM_FIELD, f"{time.time():.3f}")
            result = self.store.apply_event(json.loads(h["body"]))
            return StoreVerdict(
                bool(getattr(result, "duplicate", False)), bool(getattr(result, "stale", False))
            )
        # An earlier run of this ingest claimed the event: a seen mark is its own, not a peer's.
        result = self.store.apply_event(json.loads(h["body"]))
        if getattr(result, "duplicate", False):
            log.info("ingest: %s was applied to the store by an earlier attempt; resuming", event.event_id)
        return StoreVerdict(duplicate=False, stale=bool(getattr(result, "stale", False)))

    def _enqueue_shards(self, event: Event, h: dict[str, str]) -> None:
        shards = int(h["shards_total"])
        top = int(h["seq_top"])
        size = self.shard_size
        start_at = max(1, int(h.get("shards_enqueued", 1)))
        for first in range(start_at, shards, ENQUEUE_BATCH):
            last = min(shards, first + ENQUEUE_BATCH)
            for shard in range(first, last):
                args = (event.event_id, shard, shard * size, min(top, (shard + 1) * size))
                self.queue.enqueue(DELIVER_SHARD, event.lane, args)
            self.client.hset(self.keys.event(event.event_id), "shards_enqueued", last)
        self.run_shard(event.event_id, 0, 0, min(top, size))
