"""Delivery tracking: one compact record per (event, subscriber), plus event counters.

A record is a short string in a bucket hash keyed by the subscriber's seq:
``<status><attempts>,<seconds since the event was accepted>[|<last error>]``,
for example ``d1,3`` or ``r2,95|HTTP 500``. Every transition goes through
``lua/track.lua``, which moves the event's counters in the same step.

Events are named by their ref (``keys.event_ref``: page and event id); only
:meth:`Tracker.refs` goes from a bare event id, as the API is given it, to refs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import redis

from notifyd.ids import delivery_id
from notifyd.state.keys import BUCKET, Keys, bucket_of, event_ref, split_ref
from notifyd.state.scripts import register

#: Every status a delivery can be in, as the API names it (api/schemas.py documents this type).
DeliveryStatus = Literal[
    "pending",
    "delivered",
    "retrying",
    "failed",
    "rate_limited",
    "suppressed",
    "deferred",
    "digested",
    "superseded",
]
#: Each status's one-letter code in a tracking record: one for every DeliveryStatus (a test pins it).
STATUS_CODES: dict[str, str] = {
    "pending": "p",
    "delivered": "d",
    "retrying": "r",
    "failed": "f",
    "rate_limited": "l",
    "suppressed": "s",
    "deferred": "w",
    "digested": "g",
    "superseded": "x",
}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}
FINAL_CODES = frozenset("dflsgx")
#: An event's counters: what was planned, then one per status a record leaves ``pending`` for.
COUNTERS = ("planned", *(status for status in get_args(DeliveryStatus) if status != "pending"))
#: A suppressed record's error names the subscriber filter that stopped it: ``filter:<name>``.
FILTER_PREFIX = "filter:"
#: Keeps a record under Redis' 64-byte listpack value limit.
MAX_ERROR_CHARS = 40


@dataclass(frozen=True, slots=True)
class Record:
    status: str
    attempts: int
    offset_s: int
    error: str = ""

    @property
    def final(self) -> bool:
        return STATUS_CODES[self.status] in FINAL_CODES

    def encode(self) -> str:
        text = f"{STATUS_CODES[self.status]}{self.attempts},{self.offset_s}"
        if self.error:
            text += "|" + self.error[:MAX_ERROR_CHARS].replace("|", "/")
        return text

    @classmethod
    def decode(cls, raw: bytes | str) -> Record:
        text = raw.decode() if isinstance(raw, bytes) else raw
        head, _, error = text.partition("|")
        attempts, _, offset = head[1:].partition(",")
        return cls(STATUS_NAMES[head[0]], int(attempts), int(offset or 0), error)


@dataclass(frozen=True, slots=True)
class Update:
    seq: int
    record: Record


class AmbiguousEventId(LookupError):
    """Several pages used this event id; the page must be named."""

    def __init__(self, event_id: str, pages: list[str]) -> None:
        super().__init__(f"event id {event_id!r} was published to pages {', '.join(pages)}; name the page")
        self.pages = pages


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class Tracker:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s
        self._script = register(client, "track")

    # -- transitions ----------------------------------------------------------------

    def _run(self, mode: str, ref: str, updates: Iterable[Update]) -> list[Record | None]:
        keys = [self.keys.event(ref), self.keys.event_shards(ref)]
        index: dict[int, int] = {}
        args: list[Any] = [mode, self.ttl_s, f"{time.time():.3f}"]
        for update in updates:
            bucket = bucket_of(update.seq)
            if bucket not in index:
                keys.append(self.keys.deliveries(ref, bucket))
                index[bucket] = len(keys)
            args.extend((index[bucket], update.seq, update.record.encode()))
        previous = self._script(keys=keys, args=args)
        return [Record.decode(raw) if raw else None for raw in previous]

    def plan(self, ref: str, updates: Iterable[Update]) -> list[Record | None]:
        """Create pending records where none exist; returns what was there before."""
        return self._run("plan", ref, updates)

    def record(self, ref: str, updates: Iterable[Update]) -> list[Record | None]:
        """Move records to new statuses; final statuses never change."""
        return self._run("record", ref, updates)

    def redrive(self, ref: str, updates: Iterable[Update]) -> list[Record | None]:
        """Move failed records back to pending."""
        return self._run("redrive", ref, updates)

    def provider_failed(self, ref: str, updates: Iterable[Update]) -> list[Record | None]:
        """A provider's later report (an SMS status callback): delivered records become failed."""
        return self._run("provider_failed", ref, updates)

    def shard_done(self, ref: str, shard: int) -> None:
        self._script(
            keys=[self.keys.event(ref), self.keys.event_shards(ref)],
            args=["shard_done", self.ttl_s, f"{time.time():.3f}", shard],
        )

    # -- reads ----------------------------------------------------------------------

    def records(self, ref: str, seqs: Iterable[int]) -> dict[int, Record]:
        by_bucket: dict[int, list[int]] = defaultdict(list)
        for seq in seqs:
            by_bucket[bucket_of(seq)].append(seq)
        pipe = self.client.pipeline(transaction=False)
        order = list(by_bucket.items())
        for bucket, members in order:
            pipe.hmget(self.keys.deliveries(ref, bucket), [str(s) for s in members])
        found: dict[int, Record] = {}
        for (_, members), values in zip(order, pipe.execute(), strict=True):
            for seq, raw in zip(members, values, strict=True):
                if raw is not None:
                    found[seq] = Record.decode(raw)
        return found

    def bucket_records(self, ref: str, bucket: int) -> dict[int, Record]:
        raw = self.client.hgetall(self.keys.deliveries(ref, bucket))
        return {int(field): Record.decode(value) for field, value in raw.items()}

    def event_hash(self, ref: str) -> dict[str, str] | None:
        raw = self.client.hgetall(self.keys.event(ref))
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    def summary(self, ref: str) -> dict[str, Any] | None:
        """The object of ``GET /v1/events/{event_id}``."""
        h = self.event_hash(ref)
        if h is None:
            return None
        return summarize(split_ref(ref)[1], h)

    def refs(self, event_id: str) -> list[tuple[str, str]]:
        """``(ref, page_id)`` of each event kept with this id: one per page that took it (sorted
        by page), then the id's record from before events were kept per page, if still there."""
        pages = sorted(p.decode() for p in self.client.smembers(self.keys.event_pages(event_id)))
        candidates = [event_ref(page, event_id) for page in pages] + [event_id]
        pipe = self.client.pipeline(transaction=False)
        for ref in candidates:
            pipe.hget(self.keys.event(ref), "page_id")
        return [
            (ref, page.decode())
            for ref, page in zip(candidates, pipe.execute(), strict=True)
            if page is not None
        ]

    def find(
        self, event_id: str, page_id: str | None = None, *, reaches: Callable[[str], bool] | None = None
    ) -> str | None:
        """The ref of the one event kept with this id (on ``page_id``, if given, and on a page
        that ``reaches`` accepts, if given: an API key's pages), or None.

        Raises :class:`AmbiguousEventId` when several pages used the id and none was named."""
        found = [
            (ref, page)
            for ref, page in self.refs(event_id)
            if page_id in (None, page) and (reaches is None or reaches(page))
        ]
        if len(found) > 1:
            raise AmbiguousEventId(event_id, [page for _, page in found])
        return found[0][0] if found else None

    def summary_by_id(self, event_id: str, page_id: str | None = None) -> dict[str, Any] | None:
        """:meth:`summary` of the event :meth:`find` finds (``GET /v1/events/{event_id}``)."""
        ref = self.find(event_id, page_id)
        return self.summary(ref) if ref is not None else None


def state_of(h: dict[str, str]) -> str:
    if h.get("state") == "deduplicated":
        return "deduplicated"
    if "shards_total" not in h:
        return "accepted"
    if "finished_at" in h:
        return "done"
    if int(h.get("shards_done", 0)) < int(h["shards_total"]):
        return "fanning_out"
    return "delivering"


def summarize(event_id: str, h: dict[str, str]) -> dict[str, Any]:
    counts = {name: max(0, int(h.get(name, 0))) for name in COUNTERS}
    filtered = {
        name.removeprefix("filtered:"): int(n)
        for name, n in h.items()
        if name.startswith("filtered:") and int(n) > 0
    }
    started = h.get("started_at")
    finished = h.get("finished_at")
    return {
        "event_id": event_id,
        "page_id": h.get("page_id"),
        "type": h.get("type"),
        "priority": h.get("priority"),
        "state": state_of(h),
        "counts": counts,
        "filtered": filtered,
        "suppressed_by": h["filtered"].split(":", 1)[0] if "filtered" in h else None,
        "accepted_at": _iso(float(h["accepted_at"])) if "accepted_at" in h else None,
        "started_at": _iso(float(started)) if started else None,
        "finished_at": _iso(float(finished)) if finished else None,
    }


def delivery_view(
    ref: str, accepted_at: float, subscriber_id: str, channel: str, record: Record
) -> dict[str, Any]:
    """One delivery as the API shows it; ``ref`` is its event's (``keys.event_ref``)."""
    view: dict[str, Any] = {
        "delivery_id": delivery_id(ref, subscriber_id, channel),
        "subscriber_id": subscriber_id,
        "channel": channel,
        "status": record.status,
        "attempts": record.attempts,
        "last_error": record.error or None,
        "updated_at": _iso(accepted_at + record.offset_s),
    }
    if record.status == "digested":
        # A digested record's error field holds the delivery id of the digest that carried it.
        view["last_error"] = None
        view["digest_id"] = record.error or None
    return view


__all__ = ["BUCKET", "AmbiguousEventId", "Record", "Tracker", "Update", "delivery_view", "summarize"]
