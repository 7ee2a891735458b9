"""Record what the adapters answered: delivered, retry later (a durable delayed message), or failed.

The retry message is enqueued *before* the record that says a retry is
coming, so a record in ``retrying`` always has a message behind it.

A delivery whose subscriber's sealed parts did not open (see state/sealing.py) was
never handed to an adapter; it is recorded here too (:meth:`OutcomeRecorder.unopenable`),
as a transient outcome on the channel's schedule, so restoring the missing key before
the last retry delivers it.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import redis

from channels.base import DISABLING_REASONS, Message, Outcome, OutcomeKind
from notifyd.pipeline.endpoint_health import EndpointHealth, notice_message
from notifyd.pipeline.events import LoadedEvent
from notifyd.pipeline.metrics import DELIVERIES, PUBLISH_TO_DELIVERY, UNOPENABLE
from notifyd.pipeline.retry import group_retries, next_delay
from notifyd.pipeline.steps import RETRY, StepQueue
from notifyd.runtime.settings import Settings
from notifyd.state import throughput
from notifyd.state.keys import Keys
from notifyd.state.sealing import SealError
from notifyd.state.subscribers import StoredSubscriber, SubscriberRepo
from notifyd.state.tracking import Record, Tracker, Update

log = logging.getLogger("notifyd.pipeline")

#: The dead-letter index keeps at most this many failed deliveries.
DEAD_LETTER_CAP = 100_000

#: Sends owner notices (email) and returns their outcomes.
NoticeSender = Callable[[Sequence[Message]], list[Outcome]]


class OutcomeRecorder:
    def __init__(
        self,
        *,
        settings: Settings,
        client: redis.Redis,
        keys: Keys,
        tracker: Tracker,
        subscribers: SubscriberRepo,
        queue: StepQueue,
        send_notices: NoticeSender,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.keys = keys
        self.tracker = tracker
        self.subscribers = subscribers
        self.queue = queue
        self.send_notices = send_notices
        self.rng = rng or random.Random()
        self.health = EndpointHealth(client, keys.ns)

    def record(
        self, loaded: LoadedEvent, results: Iterable[tuple[StoredSubscriber, Outcome]], attempt: int
    ) -> None:
        """Record what the adapters answered for these deliveries."""
        self._record(loaded, results, attempt)

    def unopenable(
        self, loaded: LoadedEvent, refused: Sequence[tuple[StoredSubscriber, SealError]], attempt: int
    ) -> None:
        """Record deliveries that were not sent because their subscriber's sealed parts did not
        open: each is retried on its channel's schedule and ends ``failed`` after the last try,
        with the error's short reason (it names the key id). They are counted as the outcome
        ``unopenable``, not held against the endpoint (no quarantine, no notice to its owner),
        and logged in one line for the whole step."""
        if not refused:
            return
        statuses = self._record(
            loaded,
            [(sub, Outcome.transient(exc.reason)) for sub, exc in refused],
            attempt,
            label=UNOPENABLE,
        )
        messages = sorted({str(exc) for _, exc in refused})
        log.warning(
            "event %s: %d deliveries not sent (%s): the subscriber's sealed parts did not open: %s",
            loaded.ref,
            len(refused),
            ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())),
            "; ".join(messages[:3]) + (f"; and {len(messages) - 3} more" if len(messages) > 3 else ""),
        )

    def _record(
        self,
        loaded: LoadedEvent,
        results: Iterable[tuple[StoredSubscriber, Outcome]],
        attempt: int,
        *,
        label: str | None = None,
    ) -> Counter[str]:
        """Record the outcomes; returns how many records went to each status. ``label``: the
        ``outcome`` they are counted as, instead of their kind; such failures are the
        deployment's, not the endpoint's."""
        event = loaded.event
        offset = loaded.offset()
        now = time.time()
        updates: list[Update] = []
        #: (seconds until its retry, seq) per delivery to try again.
        retries: list[tuple[float, int]] = []
        dead: list[tuple[StoredSubscriber, str]] = []
        # Metrics are counted here and applied once per (channel, outcome): a labelled
        # inc() per delivery costs more than the tracking write itself.
        tally: Counter[tuple[str, str]] = Counter()
        for sub, outcome in results:
            tally[sub.channel, label or outcome.kind.value] += 1
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
                    retries.append((delay, sub.seq))
                    updates.append(Update(sub.seq, Record("retrying", attempt, offset, outcome.reason)))
                    continue
            else:
                reason = outcome.permanent_reason
                if reason in DISABLING_REASONS:
                    self.subscribers.disable(sub.page_id, sub.seq, reason)
            updates.append(Update(sub.seq, Record("failed", attempt, offset, outcome.reason or "failed")))
            dead.append((sub, outcome.reason or "failed"))
        latency = max(0.0, now - loaded.accepted_at)
        for (channel, kind), n in tally.items():
            DELIVERIES.labels(channel, kind).inc(n)
            if kind == OutcomeKind.delivered.value:
                # Every delivery of one batch finished at about the same moment.
                histogram = PUBLISH_TO_DELIVERY.labels(channel, event.lane)
                for _ in range(n):
                    histogram.observe(latency)
        # Retry messages first: a record that says "retrying" must always have a message behind it.
        for due_ms, seqs in group_retries(retries):
            self.queue.enqueue(RETRY, event.lane, (loaded.ref, seqs, attempt + 1), delay_ms=due_ms)
        statuses: Counter[str] = Counter(u.record.status for u in updates)
        if updates:
            self.tracker.record(loaded.ref, updates)
            throughput.record(self.client, self.keys, event.lane, statuses, latency_s=latency, at=now)
        if dead:
            pipe = self.client.pipeline(transaction=False)
            key = self.keys.dead_letters()
            pipe.zadd(key, {f"{loaded.ref}\x1f{s.seq}": now for s, _ in dead})
            pipe.zremrangebyrank(key, 0, -DEAD_LETTER_CAP - 1)
            pipe.execute()
            if label is None:
                self._watch_endpoints(event.event_id, dead)
        return statuses

    def _watch_endpoints(self, event_id: str, dead: Sequence[tuple[StoredSubscriber, str]]) -> None:
        reasons = {s.seq: reason for s, reason in dead}
        verdict = self.health.on_failed([s for s, _ in dead])
        for sub in verdict.quarantine:
            self.subscribers.disable(sub.page_id, sub.seq, "quarantined")
        if verdict.notify:
            day = time.strftime("%Y-%m-%d", time.gmtime())
            notices = [
                notice_message(
                    s, self.subscribers.endpoint(s), event_id, reasons[s.seq], self.settings.public_url, day
                )
                for s in verdict.notify
            ]
            for outcome in self.send_notices(notices):
                DELIVERIES.labels("email_notice", outcome.kind.value).inc()
