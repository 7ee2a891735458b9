"""Who hears an event now, who later in a digest, and whose copy is already moot.

In the shard, after the subscriber filters and before the send:

1. superseded: a newer resolution of the same incident that this subscriber
   hears already exists; this update is not sent. (A retry is superseded by any
   newer update: ``RetryStep``.)
2. quiet hours: inside the subscriber's window the delivery is deferred to the
   window's end, unless it is critical and the subscriber lets critical through.
3. the rate limit defers, never drops. An ``incident_resolved``, and any event
   at or above ``NOTIFYD_DIGEST_BYPASS_IMPACT`` (critical), passes it; if the
   subscriber has deferred deliveries, they go out with it at once, as one digest.
4. a subscriber who already has deferred deliveries waits for its digest, so
   the order of what it hears stays the order of events.

A deferred delivery is recorded ``deferred`` and added to the subscriber's
digest (``state/digests.py``), which is due when its window opens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from notifyd.pipeline.events import EventCache, LoadedEvent
from notifyd.pipeline.filters import EventView, subscriber_reason
from notifyd.pipeline.metrics import DEFERRED, RATE_LIMITED, SUPERSEDED
from notifyd.preferences import IMPACT_RANK
from notifyd.state.digests import Deferral, DigestQueue
from notifyd.state.incident_events import IncidentEvents
from notifyd.state.limiter import PackedLimiter
from notifyd.state.subscribers import StoredSubscriber
from notifyd.state.tracking import Record, Tracker, Update


@dataclass
class Paced:
    now: list[StoredSubscriber] = field(default_factory=list)
    #: Subscribers whose digest goes out at once, carrying this event (a resolve met deferred ones).
    flush: list[StoredSubscriber] = field(default_factory=list)


def passes_limit(event_type: str, view: EventView, bypass_impact: str) -> bool:
    if event_type == "incident_resolved":
        return True
    return view.impact is not None and IMPACT_RANK[view.impact] >= IMPACT_RANK[bypass_impact]


class Pacer:
    def __init__(
        self,
        *,
        events: EventCache,
        tracker: Tracker,
        limiter: PackedLimiter,
        digests: DigestQueue,
        incident_events: IncidentEvents,
        bypass_impact: str,
        clock: Callable[[], float],
    ) -> None:
        self.events = events
        self.tracker = tracker
        self.limiter = limiter
        self.digests = digests
        self.incident_events = incident_events
        self.bypass_impact = bypass_impact
        self.clock = clock

    def supersede(
        self,
        loaded: LoadedEvent,
        subs: Sequence[StoredSubscriber],
        *,
        attempts: int,
        by_resolution_only: bool,
    ) -> list[StoredSubscriber]:
        """Record as superseded those whom a newer event of the same incident reaches; return the rest.

        A retry is superseded by any newer update; a first send only by a newer resolution
        (a burst of updates is each worth hearing, or digesting; an update after the
        resolve is not)."""
        event = loaded.event
        view = EventView.of(event)
        if view.kind != "incident" or view.about is None or not subs:
            return list(subs)
        newer_refs = self.incident_events.newer(event.page_id, view.about, event.occurred_at.timestamp())
        newer: list[tuple[str, EventView]] = []
        for ref in newer_refs:
            other = self.events.load(ref)
            if other is None or not other.event.notify:
                continue
            if not by_resolution_only or other.event.type.value == "incident_resolved":
                newer.append((other.event.event_id, EventView.of(other.event)))
        if not newer:
            return list(subs)
        keep: list[StoredSubscriber] = []
        moot: list[Update] = []
        for sub in subs:
            by = next((eid for eid, v in newer if _hears(sub, v)), None)
            if by is None:
                keep.append(sub)
            else:
                moot.append(Update(sub.seq, Record("superseded", attempts, loaded.offset(), f"by {by}")))
        if moot:
            SUPERSEDED.inc(len(moot))
            self.tracker.record(loaded.ref, moot)
        return keep

    def pace(self, loaded: LoadedEvent, subs: Sequence[StoredSubscriber]) -> Paced:
        event = loaded.event
        view = EventView.of(event)
        now = self.clock()
        paced = Paced()
        live = self.supersede(loaded, subs, attempts=0, by_resolution_only=True)
        if not live:
            return paced
        bypass = passes_limit(event.type.value, view, self.bypass_impact)
        critical = view.impact == "critical"
        pending = self.digests.has_pending(event.page_id, [s.seq for s in live])
        deferrals: list[tuple[StoredSubscriber, float, str]] = []
        limited: list[StoredSubscriber] = []
        forced: list[StoredSubscriber] = []
        for sub, has_pending in zip(live, pending, strict=True):
            quiet = sub.prefs.quiet_hours
            quiet_end = quiet.end_after(now) if quiet is not None else None
            if quiet_end is not None and not (critical and quiet is not None and quiet.allow_critical):
                deferrals.append((sub, quiet_end, "quiet hours"))
            elif bypass and has_pending:
                deferrals.append((sub, now, "digest"))
                paced.flush.append(sub)
            elif bypass:
                forced.append(sub)
                paced.now.append(sub)
            elif has_pending:
                deferrals.append((sub, now + self.limiter.rate.window_s, "waiting for digest"))
            else:
                limited.append(sub)
        self.limiter.force(event.page_id, [s.seq for s in forced])
        opens = self.limiter.hit_many(event.page_id, [s.seq for s in limited])
        for sub, opens_at in zip(limited, opens, strict=True):
            if opens_at is None:
                paced.now.append(sub)
            else:
                deferrals.append((sub, opens_at, "rate limit"))
        if deferrals:
            self._defer(loaded, view, deferrals)
        return paced

    def _defer(
        self, loaded: LoadedEvent, view: EventView, deferrals: list[tuple[StoredSubscriber, float, str]]
    ) -> None:
        event = loaded.event
        about = view.about or f"e:{event.event_id}"
        # The digest entry first: a "deferred" record always has a digest behind it.
        self.digests.defer(
            event.page_id, [Deferral(s.seq, loaded.ref, about, due) for s, due, _ in deferrals]
        )
        offset = loaded.offset()
        self.tracker.record(
            loaded.ref, [Update(s.seq, Record("deferred", 0, offset, why)) for s, _, why in deferrals]
        )
        for (channel, why), n in Counter((s.channel, why) for s, _, why in deferrals).items():
            DEFERRED.labels(channel, why).inc(n)
            if why == "rate limit":
                RATE_LIMITED.labels(channel).inc(n)


def _hears(sub: StoredSubscriber, view: EventView) -> bool:
    return subscriber_reason(view, sub.prefs, sub.channel) is None and sub.wants(set(view.components))
