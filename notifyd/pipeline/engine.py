"""The pipeline's steps wired together for one process; ``actors.py`` binds them to dramatiq.

ingest          event -> status store -> filters -> shards (seq ranges) on the event's lane
deliver_shard   audience of one seq range -> plan -> rate limit -> send -> record
retry           deliveries whose attempt failed transiently -> send again -> record

Crash safety rests on three rules: the queue message is acked only after its
step finished; every step can run twice (planning skips what exists, final
records never change); and a retry message is enqueued *before* the record
that says a retry is coming.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from notifyd.pipeline import dispatcher, unsubscribe_links
from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.digest import DigestStep
from notifyd.pipeline.events import EventCache, StatusStoreLike
from notifyd.pipeline.filters import INGEST_FILTERS
from notifyd.pipeline.ingest import Ingest, ShardChain
from notifyd.pipeline.maintenance import MaintenancePlanner, MaintenanceWindows
from notifyd.pipeline.outcomes import OutcomeRecorder
from notifyd.pipeline.pacing import Pacer
from notifyd.pipeline.retry import RetryStep, redrive
from notifyd.pipeline.send import Sender
from notifyd.pipeline.shaping import Shaper
from notifyd.pipeline.shard import DeliverShard
from notifyd.pipeline.steps import StepQueue
from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from notifyd.state.digests import DigestQueue
from notifyd.state.incident_events import IncidentEvents
from notifyd.state.limiter import PackedLimiter
from notifyd.state.maintenances import MaintenanceRepo
from notifyd.state.schedule import Schedule

#: A continuation comes due this long after the longest a send may take.
CONTINUATION_MARGIN_MS = 5000


def continuation_delay_ms(settings: Settings) -> int:
    """When a handed-on delivery's outcome must be recorded by a live process (see send.py)."""
    longest_s = max(settings.webhook_timeout_s, settings.webhook_connect_timeout_s)
    recording_ms = settings.record_flush_ms + settings.retry_gather_ms
    return int(longest_s * 1000) + recording_ms + CONTINUATION_MARGIN_MS


class Engine:
    def __init__(
        self,
        runtime: Runtime,
        adapters: AdapterPool,
        store: StatusStoreLike | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = runtime.settings
        self.clock = clock
        self.adapters = adapters
        self.queue = StepQueue(runtime.broker, runtime.keys)
        self.tracker = runtime.tracker
        self.settings = settings
        events = EventCache(runtime.tracker, store, settings.public_url)
        recorder = OutcomeRecorder(
            settings=settings,
            client=runtime.client,
            keys=runtime.keys,
            tracker=runtime.tracker,
            subscribers=runtime.subscribers,
            queue=self.queue,
            send_notices=lambda notices: adapters.send("email", notices),
            rng=rng,
        )
        urgent = adapters.sibling()
        self.dispatchers = dispatcher.build_pair(
            settings, (urgent.runner, urgent.adapter), (adapters.runner, adapters.adapter), recorder.record
        )
        #: The normal and low lanes' dispatcher (``dispatchers.urgent`` sends critical and high).
        self.dispatcher = self.dispatchers.bulk
        unsubscribe_url = unsubscribe_links.for_runtime(runtime)
        from notifyd.selfservice.delivery import audience_filter, personalizer
        from notifyd.selfservice.wiring import links_for

        links = links_for(runtime)
        sender = Sender(
            dispatchers=self.dispatchers,
            events=events,
            queue=self.queue,
            unsubscribe_url=unsubscribe_url,
            handoff_after_s=settings.handoff_after_ms / 1000,
            continuation_delay_ms=continuation_delay_ms(settings),
            shaper=Shaper(runtime.client, runtime.keys, settings, runtime.target_digests),
            manage_url=links.manage_url,
            personalize=personalizer(runtime, events),
            secret_of=runtime.subscribers.secret_of,
            unopenable=recorder.unopenable,
            target_of=runtime.subscribers.target_of,
        )
        limiter = PackedLimiter(runtime.client, runtime.keys, rate=settings.rate_limit, clock=clock)
        self.schedule = Schedule(runtime.client, runtime.keys)
        digests = DigestQueue(runtime.client, runtime.keys)
        incident_events = IncidentEvents(runtime.client, runtime.keys, ttl_s=settings.event_id_ttl_s)
        pacer = Pacer(
            events=events,
            tracker=runtime.tracker,
            limiter=limiter,
            digests=digests,
            incident_events=incident_events,
            bypass_impact=settings.digest_bypass_impact,
            clock=clock,
        )
        self.digest = DigestStep(
            events=events,
            tracker=runtime.tracker,
            subscribers=runtime.subscribers,
            digests=digests,
            schedule=self.schedule,
            limiter=limiter,
            adapters=adapters,
            unsubscribe_url=unsubscribe_url,
            clock=clock,
        )
        maintenances = MaintenanceRepo(runtime.client, runtime.keys)
        self.maintenance = MaintenancePlanner(
            repo=maintenances,
            schedule=self.schedule,
            publisher=runtime.publisher,
            settings=settings,
            clock=clock,
        )
        chain = ShardChain(client=runtime.client, keys=runtime.keys, ttl_s=runtime.tracker.ttl_s)
        self.deliver_shard = DeliverShard(
            events=events,
            tracker=runtime.tracker,
            subscribers=runtime.subscribers,
            pacer=pacer,
            sender=sender,
            flush_digest=self.digest.flush,
            audience_filter=audience_filter(runtime),
            enqueue_next=chain,
        )
        self.ingest = Ingest(
            client=runtime.client,
            keys=runtime.keys,
            tracker=runtime.tracker,
            subscribers=runtime.subscribers,
            queue=self.queue,
            store=store,
            shard_size=settings.shard_size,
            shard_window=settings.shard_queue_window,
            chain=chain,
            run_shard=self.deliver_shard,
            incident_events=incident_events,
            on_maintenance=self.maintenance.on_event,
            filters=(*INGEST_FILTERS, MaintenanceWindows(maintenances)),
        )
        self.retry = RetryStep(
            events=events,
            tracker=runtime.tracker,
            subscribers=runtime.subscribers,
            sender=sender,
            pacer=pacer,
        )
        from notifyd.selfservice.confirmations import ConfirmationStep
        from notifyd.selfservice.messages import render_confirmation
        from notifyd.selfservice.wiring import optin_for

        self.confirm = ConfirmationStep(
            optin=optin_for(runtime, self.queue),
            links=links,
            send=adapters.send,
            requeue=lambda pending_id, attempt, delay_ms: self.queue.confirmation(
                pending_id, attempt, delay_ms=delay_ms
            ),
            render=lambda pending, url: render_confirmation(runtime, pending, url),
        )

    def close(self, drain_s: float = 15.0) -> None:
        """Let what is in flight finish and be recorded, then close the adapters."""
        self.dispatchers.close(drain_s)
        self.adapters.close()

    def run_job(self, job_id: str) -> None:
        """Run one due job of the schedule (drained by ``runtime/scheduler.py``)."""
        if not (self.digest.run_job(job_id) or self.maintenance.run_job(job_id)):
            self.schedule.remove(job_id)  # nobody knows this job: do not claim it forever

    def redrive(self, ref: str) -> int:
        """Send the event's failed deliveries again, keeping their delivery ids."""
        return redrive(self.tracker, self.queue, ref, batch=self.settings.shard_size)
