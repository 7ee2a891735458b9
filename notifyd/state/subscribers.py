"""Subscribers in Redis, indexed per page so 1M can be walked in order.

Each page numbers its subscribers with a sequence (``seq``). Records live in
bucket hashes of :data:`~notifyd.state.keys.BUCKET` entries keyed by seq, so a
fanout shard reads a seq range with a few ``HGETALL`` calls and never loads
the whole page. ``(channel, target)`` maps to its seq, which makes adding the
same target twice an update. A removed subscriber keeps a small tombstone
(id and channel) so past deliveries can still name it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from notifyd.ids import new_subscriber_id
from notifyd.models import Subscriber, generate_webhook_secret
from notifyd.preferences import NO_PREFERENCES, Preferences
from notifyd.state.keys import BUCKET, Keys, bucket_of

#: How many subscribers one import round trip writes.
IMPORT_BATCH = 1000


class SubscriberError(ValueError):
    """A subscriber request that cannot be honoured; the message says why."""


@dataclass(frozen=True, slots=True)
class StoredSubscriber:
    page_id: str
    seq: int
    id: str
    channel: str
    target: str
    secret: str | None
    components: frozenset[str] | None
    contact_email: str | None
    disabled: str | None = None
    removed: bool = False
    prefs: Preferences = NO_PREFERENCES

    def __repr__(self) -> str:  # never show the secret
        return (
            f"StoredSubscriber(page_id={self.page_id!r}, seq={self.seq}, id={self.id!r}, "
            f"channel={self.channel!r}, disabled={self.disabled!r}, removed={self.removed})"
        )

    def wants(self, components: set[str]) -> bool:
        """An event reaches this subscriber unless a component filter excludes it."""
        if self.components is None:
            return True
        return bool(self.components & components)

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "page_id": self.page_id, "channel": self.channel}
        if not self.removed:
            data["target"] = self.target
        if self.components is not None:
            data["components"] = sorted(self.components)
        if self.contact_email:
            data["contact_email"] = self.contact_email
        data.update(self.prefs.public())
        data["status"] = "removed" if self.removed else ("disabled" if self.disabled else "active")
        if self.disabled:
            data["disabled_reason"] = self.disabled
        return data

    def encode(self) -> str:
        record: dict[str, Any] = {"id": self.id, "ch": self.channel}
        if not self.removed:
            record["t"] = self.target
            if self.secret:
                record["sec"] = self.secret
            if self.components is not None:
                record["comp"] = sorted(self.components)
            if self.contact_email:
                record["ce"] = self.contact_email
            if self.disabled:
                record["dis"] = self.disabled
            record.update(self.prefs.encode())
        else:
            record["rm"] = 1
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def decode(cls, page_id: str, seq: int, raw: bytes | str) -> StoredSubscriber:
        record = json.loads(raw)
        comp = record.get("comp")
        return cls(
            page_id=page_id,
            seq=seq,
            id=record["id"],
            channel=record["ch"],
            target=record.get("t", ""),
            secret=record.get("sec"),
            components=frozenset(comp) if comp is not None else None,
            contact_email=record.get("ce"),
            disabled=record.get("dis"),
            removed=bool(record.get("rm")),
            prefs=Preferences.decode(record),
        )


@dataclass(frozen=True, slots=True)
class AddResult:
    subscriber: StoredSubscriber
    created: bool
    #: The webhook secret, returned once when notifyd generated it.
    generated_secret: str | None = None


def _target_key(channel: str, target: str) -> str:
    return f"{channel}\x1f{target}"


class SubscriberRepo:
    def __init__(self, client: redis.Redis, keys: Keys, *, allow_private_targets: bool = False) -> None:
        self.client = client
        self.keys = keys
        self.allow_private_targets = allow_private_targets

    # -- validation -----------------------------------------------------------------

    def validate(self, data: dict[str, Any] | Subscriber) -> Subscriber:
        if isinstance(data, Subscriber):
            return data
        try:
            return Subscriber.model_validate(data, context={"allow_private": self.allow_private_targets})
        except ValidationError as exc:
            raise SubscriberError(describe_validation_error(exc)) from None

    # -- writes ---------------------------------------------------------------------

    def add(self, page_id: str, data: dict[str, Any] | Subscriber) -> AddResult:
        sub = self.validate(data)
        tkey = _target_key(sub.channel, sub.target)
        targets = self.keys.subscriber_targets(page_id)
        existing = self.client.hget(targets, tkey)
        if existing is not None:
            return self._update(page_id, int(existing), sub)
        sub_id = sub.id or new_subscriber_id()
        owner = self.client.hget(self.keys.subscriber_ids(), sub_id)
        if owner is not None:
            raise SubscriberError(f"subscriber id {sub_id!r} is already used by another target")
        seq = int(self.client.incr(self.keys.page_seq(page_id))) - 1
        if not self.client.hsetnx(targets, tkey, seq):
            # Someone added the same target concurrently; theirs wins and ours is an update.
            return self._update(page_id, int(self.client.hget(targets, tkey) or seq), sub)
        stored, generated = self._new_record(page_id, seq, sub_id, sub)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.subscribers(page_id, bucket_of(seq)), str(seq), stored.encode())
        pipe.hset(self.keys.subscriber_ids(), sub_id, f"{page_id}\x1f{seq}")
        pipe.sadd(self.keys.pages(), page_id)
        pipe.execute()
        return AddResult(stored, True, generated)

    def _update(self, page_id: str, seq: int, sub: Subscriber) -> AddResult:
        current = self.get_seq(page_id, seq)
        if current is None:
            raise SubscriberError("subscriber record is missing; remove and add it again")
        if sub.id is not None and sub.id != current.id:
            raise SubscriberError(
                f"target is already subscribed as {current.id!r}; the same (page, channel, target) "
                "is the same subscriber"
            )
        updated = StoredSubscriber(
            page_id=page_id,
            seq=seq,
            id=current.id,
            channel=current.channel,
            target=current.target,
            secret=sub.secret.get_secret_value() if sub.secret else current.secret,
            components=frozenset(sub.components) if sub.components is not None else None,
            contact_email=sub.contact_email,
            disabled=None,  # re-adding a target is how an owner re-enables it
            prefs=preferences_of(sub),
        )
        self.client.hset(self.keys.subscribers(page_id, bucket_of(seq)), str(seq), updated.encode())
        return AddResult(updated, False, None)

    def import_many(
        self, page_id: str, rows: Iterable[tuple[int, dict[str, Any] | Exception]]
    ) -> Iterator[tuple[int, AddResult | SubscriberError]]:
        """Add many subscribers, streaming; yields (line, result or error) per row, in order.

        New targets are written :data:`IMPORT_BATCH` at a time in a few round trips;
        updates, explicit ids and repeats within a batch take the one-by-one path.
        """
        batch: list[tuple[int, dict[str, Any] | Exception]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= IMPORT_BATCH:
                yield from self._import_batch(page_id, batch)
                batch = []
        if batch:
            yield from self._import_batch(page_id, batch)

    def _import_batch(
        self, page_id: str, batch: list[tuple[int, dict[str, Any] | Exception]]
    ) -> Iterator[tuple[int, AddResult | SubscriberError]]:
        results: dict[int, AddResult | SubscriberError] = {}
        valid: list[tuple[int, Subscriber]] = []
        for i, (_, row) in enumerate(batch):
            if isinstance(row, Exception):
                results[i] = SubscriberError(str(row))
                continue
            try:
                valid.append((i, self.validate(row)))
            except SubscriberError as exc:
                results[i] = exc
        targets = self.keys.subscriber_targets(page_id)
        pipe = self.client.pipeline(transaction=False)
        for _, sub in valid:
            pipe.hget(targets, _target_key(sub.channel, sub.target))
        existing = pipe.execute() if valid else []
        fresh: list[tuple[int, Subscriber]] = []
        slow: list[tuple[int, Subscriber]] = []
        in_batch: set[str] = set()
        for (i, sub), known in zip(valid, existing, strict=True):
            tkey = _target_key(sub.channel, sub.target)
            if known is not None or sub.id is not None or tkey in in_batch:
                slow.append((i, sub))
            else:
                in_batch.add(tkey)
                fresh.append((i, sub))
        if fresh:
            top = int(self.client.incrby(self.keys.page_seq(page_id), len(fresh)))
            seqs = range(top - len(fresh), top)
            pipe = self.client.pipeline(transaction=False)
            for (_, sub), seq in zip(fresh, seqs, strict=True):
                pipe.hsetnx(targets, _target_key(sub.channel, sub.target), str(seq))
            claimed = pipe.execute()
            pipe = self.client.pipeline(transaction=True)
            for (i, sub), seq, won in zip(fresh, seqs, claimed, strict=True):
                if not won:  # added concurrently by someone else: an update
                    slow.append((i, sub))
                    continue
                stored, generated = self._new_record(page_id, seq, new_subscriber_id(), sub)
                pipe.hset(self.keys.subscribers(page_id, bucket_of(seq)), str(seq), stored.encode())
                pipe.hset(self.keys.subscriber_ids(), stored.id, f"{page_id}\x1f{seq}")
                results[i] = AddResult(stored, True, generated)
            pipe.sadd(self.keys.pages(), page_id)
            pipe.execute()
        for i, sub in slow:
            try:
                results[i] = self.add(page_id, sub)
            except SubscriberError as exc:
                results[i] = exc
        for i, (line, _) in enumerate(batch):
            yield line, results[i]

    @staticmethod
    def _new_record(
        page_id: str, seq: int, sub_id: str, sub: Subscriber
    ) -> tuple[StoredSubscriber, str | None]:
        generated = None
        secret = sub.secret.get_secret_value() if sub.secret else None
        if sub.channel == "webhook" and secret is None:
            secret = generated = generate_webhook_secret()
        stored = StoredSubscriber(
            page_id=page_id,
            seq=seq,
            id=sub_id,
            channel=sub.channel,
            target=sub.target,
            secret=secret,
            components=frozenset(sub.components) if sub.components is not None else None,
            contact_email=sub.contact_email,
            prefs=preferences_of(sub),
        )
        return stored, generated

    def remove(self, page_id: str, sub_id: str) -> bool:
        current = self.get(page_id, sub_id)
        if current is None or current.removed:
            return False
        tomb = StoredSubscriber(
            page_id=page_id,
            seq=current.seq,
            id=current.id,
            channel=current.channel,
            target="",
            secret=None,
            components=None,
            contact_email=None,
            removed=True,
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.subscribers(page_id, bucket_of(current.seq)), str(current.seq), tomb.encode())
        pipe.hdel(self.keys.subscriber_targets(page_id), _target_key(current.channel, current.target))
        pipe.hdel(self.keys.subscriber_ids(), sub_id)
        pipe.execute()
        return True

    def disable(self, page_id: str, seq: int, reason: str) -> None:
        current = self.get_seq(page_id, seq)
        if current is None or current.removed or current.disabled:
            return
        disabled = StoredSubscriber(**{**_fields(current), "disabled": reason})
        self.client.hset(self.keys.subscribers(page_id, bucket_of(seq)), str(seq), disabled.encode())

    def reactivate(self, page_id: str, sub_id: str) -> StoredSubscriber | None:
        """Clear a disabled (quarantined, gone, unsubscribed) subscriber; None when unknown."""
        current = self.get(page_id, sub_id)
        if current is None or current.removed:
            return None
        if current.disabled:
            current = StoredSubscriber(**{**_fields(current), "disabled": None})
            self.client.hset(
                self.keys.subscribers(page_id, bucket_of(current.seq)), str(current.seq), current.encode()
            )
        return current

    # -- reads ----------------------------------------------------------------------

    def locate(self, sub_id: str) -> tuple[str, int] | None:
        raw = self.client.hget(self.keys.subscriber_ids(), sub_id)
        if raw is None:
            return None
        page_id, seq = raw.decode().split("\x1f")
        return page_id, int(seq)

    def get(self, page_id: str, sub_id: str) -> StoredSubscriber | None:
        located = self.locate(sub_id)
        if located is None or located[0] != page_id:
            return None
        return self.get_seq(page_id, located[1])

    def get_seq(self, page_id: str, seq: int) -> StoredSubscriber | None:
        raw = self.client.hget(self.keys.subscribers(page_id, bucket_of(seq)), str(seq))
        return StoredSubscriber.decode(page_id, seq, raw) if raw is not None else None

    def max_seq(self, page_id: str) -> int:
        """One past the highest seq ever given on this page."""
        raw = self.client.get(self.keys.page_seq(page_id))
        return int(raw) if raw is not None else 0

    def range(self, page_id: str, start: int, end: int) -> list[StoredSubscriber]:
        """Subscribers (tombstones included) with start <= seq < end, in seq order."""
        if end <= start:
            return []
        pipe = self.client.pipeline(transaction=False)
        buckets = range(bucket_of(start), bucket_of(end - 1) + 1)
        for bucket in buckets:
            pipe.hgetall(self.keys.subscribers(page_id, bucket))
        found: list[StoredSubscriber] = []
        for records in pipe.execute():
            for field, raw in records.items():
                seq = int(field)
                if start <= seq < end:
                    found.append(StoredSubscriber.decode(page_id, seq, raw))
        found.sort(key=lambda s: s.seq)
        return found

    def range_many(self, page_id: str, seqs: Iterable[int]) -> list[StoredSubscriber]:
        """The subscribers with these seqs (missing ones are left out), in seq order."""
        by_bucket: dict[int, list[int]] = {}
        for seq in seqs:
            by_bucket.setdefault(bucket_of(seq), []).append(seq)
        pipe = self.client.pipeline(transaction=False)
        order = sorted(by_bucket.items())
        for bucket, members in order:
            pipe.hmget(self.keys.subscribers(page_id, bucket), [str(s) for s in members])
        found: list[StoredSubscriber] = []
        for (_, members), values in zip(order, pipe.execute(), strict=True):
            found.extend(
                StoredSubscriber.decode(page_id, seq, raw)
                for seq, raw in zip(members, values, strict=True)
                if raw is not None
            )
        found.sort(key=lambda s: s.seq)
        return found

    def page(
        self, page_id: str, *, cursor: int = 0, limit: int = 100
    ) -> tuple[list[StoredSubscriber], int | None]:
        """Live subscribers from ``cursor`` on; returns them and the next cursor (None at the end)."""
        top = self.max_seq(page_id)
        items: list[StoredSubscriber] = []
        start = cursor
        while start < top and len(items) < limit:
            end = min(top, (bucket_of(start) + 1) * BUCKET)
            for sub in self.range(page_id, start, end):
                if sub.removed:
                    continue
                if len(items) == limit:
                    return items, sub.seq
                items.append(sub)
            start = end
        return items, (start if start < top else None)

    def count(self, page_id: str) -> int:
        return int(self.client.hlen(self.keys.subscriber_targets(page_id)))


def preferences_of(sub: Subscriber) -> Preferences:
    return Preferences.from_fields(
        event_types=list(sub.event_types) if sub.event_types is not None else None,
        min_impact=sub.min_impact,
        incident_phases=list(sub.incident_phases) if sub.incident_phases is not None else None,
        quiet_hours=sub.quiet_hours.model_dump() if sub.quiet_hours is not None else None,
    )


def _fields(sub: StoredSubscriber) -> dict[str, Any]:
    return {name: getattr(sub, name) for name in StoredSubscriber.__slots__}


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


__all__ = ["AddResult", "StoredSubscriber", "SubscriberError", "SubscriberRepo"]
