"""deliver_shard: the audience of one seq range -> plan -> filters -> pacing -> send -> record.

Pacing (``pacing.py``) decides who hears the event now and who later, in a digest.

A re-run shard resends only what never reached a final or retrying state:
planning creates pending records where none exist and returns what was there.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

from notifyd.models import Event
from notifyd.pipeline.events import EventCache
from notifyd.pipeline.filters import EventView, subscriber_reason
from notifyd.pipeline.metrics import DELIVERIES_FILTERED, SHARDS
from notifyd.pipeline.pacing import Pacer
from notifyd.pipeline.send import Continuation, Sender
from notifyd.pipeline.steps import RESUME
from notifyd.state.subscribers import StoredSubscriber, SubscriberRepo
from notifyd.state.tracking import FILTER_PREFIX, Record, Tracker, Update

log = logging.getLogger("notifyd.pipeline")

AudienceFilter = Callable[[Event, list[StoredSubscriber]], list[StoredSubscriber]]


class DeliverShard:
    def __init__(
        self,
        *,
        events: EventCache,
        tracker: Tracker,
        subscribers: SubscriberRepo,
        pacer: Pacer,
        sender: Sender,
        flush_digest: Callable[..., None],
        enqueue_next: Callable[[str, str, int, int, int], None],
        audience_filter: AudienceFilter | None = None,
    ) -> None:
        #: Drops followers of another incident, and those whose incident resolved before this
        #: event; see notifyd/selfservice/delivery.py.
        self.audience_filter = audience_filter
        self.events = events
        self.tracker = tracker
        self.subscribers = subscribers
        self.pacer = pacer
        self.sender = sender
        self.flush_digest = flush_digest
        self.enqueue_next = enqueue_next

    def __call__(self, ref: str, shard: int, start: int, end: int) -> None:
        loaded = self.events.load(ref)
        if loaded is None:
            log.warning("shard %s/%d: event has expired", ref, shard)
            return
        event = loaded.event
        # Before anything that can fail: the shard one window on is queued before this one is acked.
        self.enqueue_next(ref, event.lane, shard, start, end)
        SHARDS.labels(event.lane).inc()
        touched = event.components_touched()
        view = EventView.of(event)
        filtered: Counter[tuple[str, str]] = Counter()
        audience: list[StoredSubscriber] = []
        plans: list[Update] = []
        offset = loaded.offset()
        members = [s for s in self.subscribers.range(event.page_id, start, end) if not s.removed]
        if self.audience_filter is not None:
            members = self.audience_filter(event, members)
        for sub in members:
            if not sub.wants(touched):
                continue
            audience.append(sub)
            if sub.disabled:
                plans.append(Update(sub.seq, Record("suppressed", 0, offset, f"disabled: {sub.disabled}")))
            elif (reason := subscriber_reason(view, sub.prefs, sub.channel)) is not None:
                filtered[reason, sub.channel] += 1
                plans.append(Update(sub.seq, Record("suppressed", 0, offset, FILTER_PREFIX + reason)))
            else:
                plans.append(Update(sub.seq, Record("pending", 0, offset)))
        previous = self.tracker.plan(ref, plans)
        for (reason, channel), n in filtered.items():
            DELIVERIES_FILTERED.labels(reason, channel).inc(n)
        eligible: list[StoredSubscriber] = []
        for sub, plan, prev in zip(audience, plans, previous, strict=True):
            if plan.record.status == "suppressed":
                continue
            if prev is None or (prev.status == "pending" and prev.attempts == 0):
                eligible.append(sub)
        paced = self.pacer.pace(loaded, eligible)
        self.sender.send_and_record(loaded, paced.now, attempt=1, continuation=self._continue(ref))
        for sub in paced.flush:
            self.flush_digest(sub.page_id, sub.seq, force=True)
        self.tracker.shard_done(ref, shard)

    @staticmethod
    def _continue(ref: str) -> Continuation:
        return lambda seqs, shaped: (RESUME, (ref, seqs, shaped))

    def resume(self, ref: str, seqs: Sequence[int], shaped: bool = False) -> None:
        """Send what a shard handed on and nobody recorded since (its process died)."""
        loaded = self.events.load(ref)
        if loaded is None:
            return
        records = self.tracker.records(ref, seqs)
        due = [
            s for s in seqs if (r := records.get(s)) is not None and r.status == "pending" and r.attempts == 0
        ]
        if not due:
            return
        subs = [s for s in self.subscribers.range_many(loaded.event.page_id, due) if not s.removed]
        live = [s for s in subs if not s.disabled]
        gone = [s for s in subs if s.disabled]
        if gone:
            offset = loaded.offset()
            self.tracker.record(
                ref,
                [Update(s.seq, Record("suppressed", 0, offset, "subscriber disabled")) for s in gone],
            )
        self.sender.send_and_record(loaded, live, attempt=1, continuation=self._continue(ref), shaped=shaped)
