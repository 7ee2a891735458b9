"""The digest: one message per subscriber and channel carrying what it missed meanwhile.

When the subscriber's window opens (its job in the schedule comes due), the
deferred deliveries are grouped by what they are about, and each group shows
its current state, the newest event's: "3 updates on Database outage; now:
resolved". The digest is rendered by the channel's own adapter like any
notification. Its delivery id is derived from the deliveries it carries, so
a digest re-sent after a crash keeps its id. Each carried delivery becomes
``digested`` with that id.

A digest whose subscriber's sealed parts do not open (a key missing from
``NOTIFYD_SECRET_KEY``) is not sent and comes due again as a transient failure
does; it is counted as the outcome ``unopenable``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from channels.base import Message, Notification, OutcomeKind
from notifyd.ids import delivery_id
from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.events import EventCache, LoadedEvent
from notifyd.pipeline.metrics import DIGESTS, UNOPENABLE
from notifyd.pipeline.render import notification_for
from notifyd.preferences import IMPACT_RANK
from notifyd.state.digests import DigestQueue
from notifyd.state.limiter import PackedLimiter
from notifyd.state.schedule import Schedule
from notifyd.state.sealing import SealError
from notifyd.state.subscribers import StoredSubscriber, SubscriberRepo
from notifyd.state.tracking import Record, Tracker, Update

log = logging.getLogger("notifyd.pipeline.digest")

#: Seconds before a digest that failed transiently is tried again.
DIGEST_RETRY_S = 30.0

UnsubscribeLinks = Callable[[str, str, str], str]


@dataclass(frozen=True, slots=True)
class Entry:
    """One incident (component, maintenance) in a digest: its newest event and how many it had."""

    about: str
    latest: LoadedEvent
    notification: Notification
    event_ids: tuple[str, ...]
    #: The same events' refs (keys.event_ref): what the digest queue and tracking know them by.
    refs: tuple[str, ...]


def digest_id_for(sub: StoredSubscriber, refs: Sequence[str]) -> str:
    carried = hashlib.blake2b("\x1f".join(sorted(refs)).encode(), digest_size=12).hexdigest()
    return delivery_id(f"digest:{carried}", sub.id, sub.channel)


def _line(entry: Entry) -> str:
    n = len(entry.event_ids)
    what = f"{n} updates on {entry.notification.title}" if n > 1 else entry.notification.title
    return f"{what}; now: {entry.notification.status.replace('_', ' ')}"


def render_digest(
    page_id: str, digest_id: str, entries: Sequence[Entry], link: str | None, at: float
) -> Notification:
    occurred_at = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    lines = [_line(e) for e in entries]
    impacts = [e.notification.impact for e in entries]
    impact = max(impacts, key=lambda i: IMPACT_RANK.get(i, 0)) if impacts else "none"
    if len(entries) == 1:
        only = entries[0].notification
        title, status = only.title, only.status
        message = lines[0] + (f". {only.message}" if only.message else "")
    else:
        title, status = f"{len(entries)} updates while you were away", "digest"
        message = "\n".join(lines)
    components = tuple(sorted({c for e in entries for c in e.notification.components}))
    items = []
    for e in entries:
        item = {k: v for k, v in e.notification.payload.items() if k not in ("page",)}
        items.append(
            {"about": e.about, "updates": len(e.event_ids), "event_ids": list(e.event_ids), "now": item}
        )
    payload = {
        "type": "digest",
        "event_id": digest_id,
        "page_id": page_id,
        "occurred_at": occurred_at,
        "summary": lines,
        "items": items,
    }
    page = entries[-1].notification.payload.get("page") if entries else None
    if page is not None:
        payload["page"] = page
    return Notification(
        event_id=digest_id,
        event_type="digest",
        page_id=page_id,
        occurred_at=occurred_at,
        title=title,
        status=status,
        impact=impact,
        message=message,
        components=components,
        payload=payload,
        link=link,
    )


class DigestStep:
    def __init__(
        self,
        *,
        events: EventCache,
        tracker: Tracker,
        subscribers: SubscriberRepo,
        digests: DigestQueue,
        schedule: Schedule,
        limiter: PackedLimiter,
        adapters: AdapterPool,
        unsubscribe_url: UnsubscribeLinks,
        clock: Callable[[], float],
    ) -> None:
        self.events = events
        self.tracker = tracker
        self.subscribers = subscribers
        self.digests = digests
        self.schedule = schedule
        self.limiter = limiter
        self.adapters = adapters
        self.unsubscribe_url = unsubscribe_url
        self.clock = clock

    def run_job(self, job_id: str) -> bool:
        """Run a due digest job; False when the job is not a digest's."""
        parsed = self.digests.parse_job(job_id)
        if parsed is None:
            return False
        self.flush(*parsed)
        return True

    def flush(self, page_id: str, seq: int, *, force: bool = False) -> None:
        """Send the subscriber's digest if its window is open (or ``force``), else move the job."""
        now = self.clock()
        job = self.digests.job_id(page_id, seq)
        pending = self.digests.pending(page_id, seq)
        sub = self.subscribers.get_seq(page_id, seq)
        if not pending:
            self.digests.finish(page_id, seq, [], now=now)
            return
        if sub is None or sub.removed or sub.disabled:
            self._settle(pending, seq, "suppressed", "subscriber disabled")
            self.digests.finish(page_id, seq, list(pending), now=now)
            return
        if not force:
            quiet = sub.prefs.quiet_hours
            quiet_end = quiet.end_after(now) if quiet is not None else None
            if quiet_end is not None:
                self.schedule.reschedule(job, quiet_end)
                return
            opens_at = self.limiter.hit_many(page_id, [seq])[0]
            if opens_at is not None:
                self.schedule.reschedule(job, opens_at)
                return
        else:
            self.limiter.force(page_id, [seq])
        entries, gone = self._entries(pending)
        if gone:
            self.digests.finish(page_id, seq, gone, now=now)
        if not entries:
            return
        carried = [ref for e in entries for ref in e.refs]
        digest_id = digest_id_for(sub, carried)
        link = entries[-1].notification.link
        try:
            target = self.subscribers.target_of(sub)
            secret = self.subscribers.secret_of(sub)
        except SealError as exc:
            DIGESTS.labels(sub.channel, UNOPENABLE).inc()
            log.warning(
                "digest %s of page %s: not sent, the subscriber's sealed parts did not open "
                "(trying again in %d s): %s",
                digest_id,
                page_id,
                DIGEST_RETRY_S,
                exc,
            )
            self.schedule.reschedule(job, now + DIGEST_RETRY_S)
            return
        message = Message(
            delivery_id=digest_id,
            subscriber_id=sub.id,
            target=target,
            notification=render_digest(page_id, digest_id, entries, link, now),
            attempt=1,
            secret=secret,
            unsubscribe_url=(
                self.unsubscribe_url(page_id, sub.id, target) if sub.channel == "email" else None
            ),
        )
        outcome = self.adapters.send(sub.channel, [message])[0]
        DIGESTS.labels(sub.channel, outcome.kind.value).inc()
        if outcome.kind is OutcomeKind.delivered:
            self._settle({ref: "" for ref in carried}, seq, "digested", digest_id)
        elif outcome.kind is OutcomeKind.transient:
            self.schedule.reschedule(job, now + max(DIGEST_RETRY_S, outcome.retry_after or 0.0))
            return
        else:
            self._settle({ref: "" for ref in carried}, seq, "failed", outcome.reason or "failed")
        self.digests.finish(page_id, seq, carried, now=now)

    def _entries(self, pending: dict[str, str]) -> tuple[list[Entry], list[str]]:
        groups: dict[str, list[LoadedEvent]] = {}
        gone: list[str] = []
        for ref, about in pending.items():
            found = self.events.load(ref)
            if found is None:
                gone.append(ref)  # expired with its event record: nothing left to carry
                continue
            groups.setdefault(about, []).append(found)
        entries = []
        for about, loaded in groups.items():
            loaded.sort(key=lambda le: (le.event.occurred_at, le.accepted_at))
            latest = loaded[-1]
            page_state = self.events.store.page_status(latest.event.page_id) if self.events.store else None
            entries.append(
                Entry(
                    about,
                    latest,
                    notification_for(latest.event, page_state, self.events.public_url),
                    tuple(le.event.event_id for le in loaded),
                    tuple(le.ref for le in loaded),
                )
            )
        entries.sort(key=lambda e: e.latest.event.occurred_at)
        return entries, gone

    def _settle(self, refs: dict[str, str], seq: int, status: str, note: str) -> None:
        for ref in refs:
            loaded = self.events.load(ref)
            offset = loaded.offset() if loaded is not None else 0
            self.tracker.record(ref, [Update(seq, Record(status, 1, offset, note))])
