"""The pipeline's steps as plain methods; ``actors.py`` binds them to dramatiq.

ingest          event -> status store -> filters -> shards (seq ranges) on the event's lane
deliver_shard   audience of one seq range -> plan -> rate limit -> send -> record
retry           deliveries whose attempt failed transiently -> send again -> record

Crash safety rests on three rules: the queue message is acked only after its
step finished; every step can run twice (planning skips what exists, final
records never change); and a retry message is enqueued *before* the record
that says a retry is coming.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from dramatiq import Message as QueueMessage

from channels.base import DISABLING_REASONS, Message, Notification, Outcome, OutcomeKind
from notifyd import unsubscribe
from notifyd.ids import delivery_id
from notifyd.models import Event
from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.endpoint_health import EndpointHealth, notice_message
from notifyd.pipeline.filters import StoreVerdict, first_reason
from notifyd.pipeline.metrics import DELIVERIES, EVENTS_INGESTED, PUBLISH_TO_DELIVERY, RATE_LIMITED, SHARDS
from notifyd.pipeline.ratelimit import BatchRateLimiter
from notifyd.pipeline.render import notification_for
from notifyd.pipeline.retry import next_delay
from notifyd.runtime.wiring import Runtime
from notifyd.state.subscribers import StoredSubscriber
from notifyd.state.tracking import Record, Update

log = logging.getLogger("notifyd.pipeline")

#: Shard messages enqueued per Redis pipeline round trip.
ENQUEUE_BATCH = 200
#: Permanent reasons that mean the subscriber must not be tried again.
DEAD_LETTER_CAP = 100_000
#: Outcomes are recorded after every chunk this size, so a worker killed mid-shard
#: loses at most one chunk of "delivered" records (which the re-run then resends).
SEND_CHUNK = 100


class StatusStoreLike(Protocol):
    def apply_event(self, event: dict[str, Any]) -> Any: ...

    def page_status(self, page_id: str) -> dict[str, Any]: ...


def actor_name(step: str, lane: str) -> str:
    return f"{step}_{lane}"


@dataclass(frozen=True, slots=True)
class LoadedEvent:
    event: Event
    accepted_at: float


class Engine:
    def __init__(
        self,
        runtime: Runtime,
        adapters: AdapterPool,
        store: StatusStoreLike | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.adapters = adapters
        self.store = store
        self.rng = rng or random.Random()
        self.limiter = BatchRateLimiter(
            runtime.client, rate=self.settings.rate_limit, key_prefix=runtime.keys.rate_limit_prefix()
        )
        self.health = EndpointHealth(runtime.client, runtime.keys.ns)
        self._unsubscribe_key: bytes | None = None
        self._load_event = lru_cache(maxsize=256)(self._load_event_uncached)
        self._notification = lru_cache(maxsize=256)(self._notification_uncached)

    # -- helpers --------------------------------------------------------------------

    def _load_event_uncached(self, event_id: str) -> LoadedEvent | None:
        h = self.rt.tracker.event_hash(event_id)
        if h is None or "body" not in h:
            return None
        return LoadedEvent(Event.model_validate_json(h["body"]), float(h.get("accepted_at", time.time())))

    def _notification_uncached(self, event_id: str) -> Notification:
        loaded = self._load_event(event_id)
        assert loaded is not None
        page_state = self.store.page_status(loaded.event.page_id) if self.store is not None else None
        return notification_for(loaded.event, page_state, self.settings.public_url)

    def _enqueue(self, step: str, lane: str, args: tuple[Any, ...], delay_ms: int | None = None) -> None:
        message: QueueMessage[Any] = QueueMessage(
            queue_name=self.rt.keys.queue_name(lane),
            actor_name=actor_name(step, lane),
            args=args,
            kwargs={},
            options={},
        )
        self.rt.broker.enqueue(message, delay=delay_ms)

    def _offset(self, loaded: LoadedEvent) -> int:
        return max(0, int(time.time() - loaded.accepted_at))

    def _unsubscribe_url(self, sub: StoredSubscriber) -> str | None:
        if sub.channel != "email":
            return None
        if self._unsubscribe_key is None:
            configured = self.settings.unsubscribe_secret
            self._unsubscribe_key = unsubscribe.signing_key(
                self.rt.client, self.rt.keys, configured.get_secret_value() if configured else None
            )
        return unsubscribe.url(self.settings.public_url, self._unsubscribe_key, sub.page_id, sub.id)

    # -- ingest ---------------------------------------------------------------------

    def ingest(self, event_id: str) -> None:
        h = self.rt.tracker.event_hash(event_id)
        if h is None or "body" not in h:
            log.warning("ingest: event %s has expired or was never accepted", event_id)
            return
        event = Event.model_validate_json(h["body"])
        ev_key = self.rt.keys.event(event_id)
        if "shards_total" not in h:
            EVENTS_INGESTED.labels(event.lane).inc()
            verdict = StoreVerdict()
            if self.store is not None:
                result = self.store.apply_event(json.loads(h["body"]))
                verdict = StoreVerdict(
                    bool(getattr(result, "duplicate", False)), bool(getattr(result, "stale", False))
                )
            reason = first_reason(event, verdict)
            top = 0 if reason else self.rt.subscribers.max_seq(event.page_id)
            shards = math.ceil(top / self.settings.shard_size)
            now = f"{time.time():.3f}"
            pipe = self.rt.client.pipeline(transaction=True)
            fields: dict[str, Any] = {"shards_total": shards, "seq_top": top, "started_at": now}
            if reason:
                fields["filtered"] = reason
            pipe.hset(ev_key, mapping=fields)
            pipe.zadd(self.rt.keys.page_events(event.page_id), {event_id: float(now)})
            pipe.zremrangebyrank(self.rt.keys.page_events(event.page_id), 0, -1001)
            pipe.execute()
            if shards == 0:
                self.rt.tracker.shard_done(event_id, 0)  # runs the completion check
                return
            h = self.rt.tracker.event_hash(event_id) or h
        # Enqueue shards from where a crashed ingest left off. Shard 0 runs right here,
        # after the others are on the queue: it saves the first deliveries a queue hop.
        shards = int(h["shards_total"])
        top = int(h["seq_top"])
        size = self.settings.shard_size
        start_at = max(1, int(h.get("shards_enqueued", 1)))
        for first in range(start_at, shards, ENQUEUE_BATCH):
            last = min(shards, first + ENQUEUE_BATCH)
            for shard in range(first, last):
                self._enqueue(
                    "deliver_shard", event.lane, (event_id, shard, shard * size, min(top, (shard + 1) * size))
                )
            self.rt.client.hset(ev_key, "shards_enqueued", last)
        self.deliver_shard(event_id, 0, 0, min(top, size))

    # -- deliver a shard ------------------------------------------------------------

    def deliver_shard(self, event_id: str, shard: int, start: int, end: int) -> None:
        loaded = self._load_event(event_id)
        if loaded is None:
            log.warning("shard %s/%d: event has expired", event_id, shard)
            return
        event = loaded.event
        SHARDS.labels(event.lane).inc()
        touched = event.components_touched()
        audience: list[StoredSubscriber] = []
        plans: list[Update] = []
        offset = self._offset(loaded)
        for sub in self.rt.subscribers.range(event.page_id, start, end):
            if sub.removed or not sub.wants(touched):
                continue
            audience.append(sub)
            if sub.disabled:
                plans.append(Update(sub.seq, Record("suppressed", 0, offset, f"disabled: {sub.disabled}")))
            else:
                plans.append(Update(sub.seq, Record("pending", 0, offset)))
        previous = self.rt.tracker.plan(event_id, plans)
        eligible: list[StoredSubscriber] = []
        for sub, plan, prev in zip(audience, plans, previous, strict=True):
            if plan.record.status == "suppressed":
                continue
            # A re-run shard resends only what never reached a final or retrying state.
            if prev is None or (prev.status == "pending" and prev.attempts == 0):
                eligible.append(sub)
        allowed = self.limiter.hit_many([(s.id, s.channel) for s in eligible])
        limited = [s for s, ok in zip(eligible, allowed, strict=True) if not ok]
        if limited:
            for channel, n in Counter(s.channel for s in limited).items():
                RATE_LIMITED.labels(channel).inc(n)
            self.rt.tracker.record(
                event_id, [Update(s.seq, Record("rate_limited", 0, offset, "rate limit")) for s in limited]
            )
        to_send = [s for s, ok in zip(eligible, allowed, strict=True) if ok]
        self._send_and_record(loaded, to_send, attempt=1)
        self.rt.tracker.shard_done(event_id, shard)

    # -- retry ----------------------------------------------------------------------

    def retry(self, event_id: str, seqs: Sequence[int], attempt: int) -> None:
        loaded = self._load_event(event_id)
        if loaded is None:
            return
        records = self.rt.tracker.records(event_id, seqs)
        due = [
            s
            for s in seqs
            if (r := records.get(s)) is not None and r.status == "retrying" and r.attempts == attempt - 1
        ]
        subs = self.rt.subscribers.range_many(loaded.event.page_id, due)
        live = [s for s in subs if not s.removed and not s.disabled]
        gone = [s for s in subs if s.removed or s.disabled]
        if gone:
            offset = self._offset(loaded)
            self.rt.tracker.record(
                event_id,
                [
                    Update(s.seq, Record("suppressed", attempt - 1, offset, "subscriber disabled"))
                    for s in gone
                ],
            )
        self._send_and_record(loaded, live, attempt=attempt)

    def redrive(self, event_id: str) -> int:
        """Send the event's failed deliveries again, keeping their delivery ids."""
        loaded = self._load_event(event_id)
        h = self.rt.tracker.event_hash(event_id)
        if loaded is None or h is None:
            return 0
        top = int(h.get("seq_top", 0))
        offset = self._offset(loaded)
        moved: list[int] = []
        for bucket in range(0, math.ceil(top / 128) if top else 0):
            failed = [
                seq
                for seq, r in self.rt.tracker.bucket_records(event_id, bucket).items()
                if r.status == "failed"
            ]
            if not failed:
                continue
            prev = self.rt.tracker.redrive(
                event_id, [Update(s, Record("retrying", 0, offset, "redrive")) for s in failed]
            )
            moved.extend(
                s for s, p in zip(failed, prev, strict=True) if p is not None and p.status == "failed"
            )
        for first in range(0, len(moved), self.settings.shard_size):
            self._enqueue(
                "retry", loaded.event.lane, (event_id, moved[first : first + self.settings.shard_size], 1)
            )
        return len(moved)

    # -- shared: send a batch and record what happened ------------------------------

    def _send_and_record(
        self, loaded: LoadedEvent, subs: Sequence[StoredSubscriber], *, attempt: int
    ) -> None:
        if not subs:
            return
        event = loaded.event
        notification = self._notification(event.event_id)
        by_channel: dict[str, list[StoredSubscriber]] = defaultdict(list)
        for sub in subs:
            by_channel[sub.channel].append(sub)
        for channel, all_members in by_channel.items():
            for first in range(0, len(all_members), SEND_CHUNK):
                members = all_members[first : first + SEND_CHUNK]
                self._send_chunk(loaded, notification, channel, members, attempt)

    def _send_chunk(
        self,
        loaded: LoadedEvent,
        notification: Notification,
        channel: str,
        members: Sequence[StoredSubscriber],
        attempt: int,
    ) -> None:
        event = loaded.event
        batch = [
            Message(
                delivery_id=delivery_id(event.event_id, s.id, channel),
                subscriber_id=s.id,
                target=s.target,
                notification=notification,
                attempt=attempt,
                secret=s.secret,
                unsubscribe_url=self._unsubscribe_url(s),
            )
            for s in members
        ]
        results = list(zip(members, self.adapters.send(channel, batch), strict=True))
        self._record_outcomes(loaded, results, attempt)

    def _record_outcomes(
        self, loaded: LoadedEvent, results: Iterable[tuple[StoredSubscriber, Outcome]], attempt: int
    ) -> None:
        event = loaded.event
        offset = self._offset(loaded)
        now = time.time()
        updates: list[Update] = []
        retries: dict[int, list[int]] = defaultdict(list)
        dead: list[tuple[StoredSubscriber, str]] = []
        # Metrics are counted here and applied once per (channel, outcome): a labelled
        # inc() per delivery costs more than the tracking write itself.
        tally: Counter[tuple[str, str]] = Counter()
        for sub, outcome in results:
            tally[sub.channel, outcome.kind.value] += 1
            if outcome.kind is OutcomeKind.delivered:
                updates.append(Update(sub.seq, Record("delivered", attempt, offset)))
                continue
            if outcome.kind is OutcomeKind.transient:
                delay = next_delay(
                    self.settings.retry_schedule(sub.channel),
                    attempt,
                    jitter=self.settings.retry_jitter,
                    retry_after=outcome.retry_after,
                    rng=self.rng,
                )
                if delay is not None:
                    # Group by whole second: one queue message per group, not per delivery.
                    delay_ms = math.ceil(delay) * 1000 if delay >= 1 else int(delay * 1000)
                    retries[delay_ms].append(sub.seq)
                    updates.append(Update(sub.seq, Record("retrying", attempt, offset, outcome.reason)))
                    continue
            else:
                reason = outcome.permanent_reason
                if reason in DISABLING_REASONS:
                    self.rt.subscribers.disable(sub.page_id, sub.seq, reason)
            updates.append(Update(sub.seq, Record("failed", attempt, offset, outcome.reason or "failed")))
            dead.append((sub, outcome.reason or "failed"))
        latency = max(0.0, now - loaded.accepted_at)
        for (channel, kind), n in tally.items():
            DELIVERIES.labels(channel, kind).inc(n)
            if kind == OutcomeKind.delivered.value:
                # Every delivery of one chunk finished at the same moment.
                histogram = PUBLISH_TO_DELIVERY.labels(channel, event.lane)
                for _ in range(n):
                    histogram.observe(latency)
        # Retry messages first: a record that says "retrying" must always have a message behind it.
        for delay_ms, seqs in retries.items():
            self._enqueue("retry", event.lane, (event.event_id, seqs, attempt + 1), delay_ms=delay_ms)
        if updates:
            self.rt.tracker.record(event.event_id, updates)
        if dead:
            pipe = self.rt.client.pipeline(transaction=False)
            key = self.rt.keys.dead_letters()
            pipe.zadd(key, {f"{event.event_id}\x1f{s.seq}": now for s, _ in dead})
            pipe.zremrangebyrank(key, 0, -DEAD_LETTER_CAP - 1)
            pipe.execute()
            self._watch_endpoints(event.event_id, dead)

    def _watch_endpoints(self, event_id: str, dead: Sequence[tuple[StoredSubscriber, str]]) -> None:
        reasons = {s.seq: reason for s, reason in dead}
        verdict = self.health.on_failed([s for s, _ in dead])
        for sub in verdict.quarantine:
            self.rt.subscribers.disable(sub.page_id, sub.seq, "quarantined")
        if verdict.notify:
            day = time.strftime("%Y-%m-%d", time.gmtime())
            notices = [
                notice_message(s, event_id, reasons[s.seq], self.settings.public_url, day)
                for s in verdict.notify
            ]
            for outcome in self.adapters.send("email", notices):
                DELIVERIES.labels("email_notice", outcome.kind.value).inc()
