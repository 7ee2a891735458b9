"""Reading deliveries: an event's, page by page, and a subscriber's recent ones.

An event's deliveries are addressed by the subscriber's seq on the page, and
a seq never changes meaning, so "the next seq to read" is a cursor that stays
valid while workers write. Pages are cut on the *audience* (the page's
subscribers below the event's ``seq_top`` whom the event reaches), not on the
records written so far: a seq whose shard has not run yet shows as
``pending`` instead of being skipped, so a reader who pages ahead of the
workers misses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from notifyd.runtime.wiring import Runtime
from notifyd.state.keys import BUCKET, bucket_of, split_ref
from notifyd.state.subscribers import StoredSubscriber
from notifyd.state.tracking import Record, delivery_view

#: Buckets read per Redis round trip.
BUCKETS_PER_TRIP = 8
#: Buckets one request may scan before it answers with what it found (a filter may match rarely).
MAX_BUCKETS_PER_REQUEST = 256
#: How many of a page's latest events the subscriber view looks into.
RECENT_EVENTS = 50


@dataclass(frozen=True, slots=True)
class EventInfo:
    ref: str
    page_id: str
    seq_top: int
    accepted_at: float
    touched: frozenset[str]


def event_info(rt: Runtime, ref: str) -> EventInfo | None:
    h = rt.tracker.event_hash(ref)
    if h is None:
        return None
    touched: set[str] = set()
    if "body" in h:
        body = json.loads(h["body"])
        touched.update((body.get("incident") or {}).get("components") or [])
        if body.get("component"):
            touched.add(body["component"]["id"])
    return EventInfo(
        ref,
        h.get("page_id", ""),
        int(h.get("seq_top", 0)),
        float(h.get("accepted_at", 0.0)),
        frozenset(touched),
    )


def _in_audience(sub: StoredSubscriber, touched: frozenset[str]) -> bool:
    return not sub.removed and sub.wants(set(touched))


def _buckets(rt: Runtime, info: EventInfo, first: int, last: int) -> Iterator[tuple[int, dict, dict]]:
    """(bucket, {seq: Record}, {seq: StoredSubscriber}) for buckets first..last-1, a few per trip."""
    for start in range(first, last, BUCKETS_PER_TRIP):
        chunk = range(start, min(last, start + BUCKETS_PER_TRIP))
        pipe = rt.client.pipeline(transaction=False)
        for bucket in chunk:
            pipe.hgetall(rt.keys.deliveries(info.ref, bucket))
            pipe.hgetall(rt.keys.subscribers(info.page_id, bucket))
        values = pipe.execute()
        for i, bucket in enumerate(chunk):
            records = {int(k): Record.decode(v) for k, v in values[2 * i].items()}
            subs = {
                int(k): StoredSubscriber.decode(info.page_id, int(k), v) for k, v in values[2 * i + 1].items()
            }
            yield bucket, records, subs


def event_deliveries(
    rt: Runtime,
    info: EventInfo,
    *,
    cursor: int,
    limit: int,
    status: str | None = None,
    channel: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the event's deliveries from seq ``cursor`` on, and the next cursor (None at the end)."""
    top = info.seq_top
    if cursor >= top:
        return [], None
    last_bucket = bucket_of(top - 1) + 1
    first_bucket = bucket_of(cursor)
    stop_bucket = min(last_bucket, first_bucket + MAX_BUCKETS_PER_REQUEST)
    items: list[dict[str, Any]] = []
    for bucket, records, subs in _buckets(rt, info, first_bucket, stop_bucket):
        lo = max(cursor, bucket * BUCKET)
        hi = min(top, (bucket + 1) * BUCKET)
        for seq in range(lo, hi):
            record = records.get(seq)
            sub = subs.get(seq)
            if record is None:
                # Not planned yet: part of the audience means it will be; otherwise it never will.
                if sub is None or not _in_audience(sub, info.touched):
                    continue
                record = Record("pending", 0, 0)
            sub_id, sub_channel = (sub.id, sub.channel) if sub is not None else (f"seq-{seq}", "unknown")
            if (status and record.status != status) or (channel and sub_channel != channel):
                continue
            if len(items) == limit:
                return items, seq
            items.append(delivery_view(info.ref, info.accepted_at, sub_id, sub_channel, record))
    next_seq = stop_bucket * BUCKET
    return items, (next_seq if next_seq < top else None)


def subscriber_deliveries(
    rt: Runtime, page_id: str, seq: int, sub: StoredSubscriber, *, limit: int = RECENT_EVENTS
) -> list[dict[str, Any]]:
    """The subscriber's deliveries in the page's latest events, newest first."""
    refs = [
        e.decode() if isinstance(e, bytes) else e
        for e in rt.client.zrevrange(rt.keys.page_events(page_id), 0, max(0, limit - 1))
    ]
    if not refs:
        return []
    pipe = rt.client.pipeline(transaction=False)
    for ref in refs:
        pipe.hget(rt.keys.deliveries(ref, bucket_of(seq)), str(seq))
        pipe.hget(rt.keys.event(ref), "accepted_at")
    values = pipe.execute()
    items = []
    for i, ref in enumerate(refs):
        raw, accepted = values[2 * i], values[2 * i + 1]
        if raw is None or accepted is None:
            continue
        view = delivery_view(ref, float(accepted), sub.id, sub.channel, Record.decode(raw))
        items.append({"event_id": split_ref(ref)[1], **view})
    return items
