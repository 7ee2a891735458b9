"""Hand a step's deliveries to the dispatcher, and wait until they are recorded or handed on.

A step (a shard, a retry) waits for its deliveries' outcomes to be recorded,
for at most ``handoff_after_ms`` (its time slice). Then it does not hold its
worker thread any longer, whether its deliveries wait for slow endpoints or
for a busy dispatcher:

- those that have not started are withdrawn from the dispatcher and continued
  at once by a new message at the back of the lane's queue, so other events'
  steps (a small page's ingest) get a thread in between;
- those in flight are continued by a delayed message that comes due after the
  longest a send can take, plus a margin; by then the process has recorded
  their outcomes, and the continuation finds nothing to do. If the process
  died meanwhile, the continuation sends them again: at-least-once holds
  across a crash, as it does for a shard that is re-run.

It stops waiting sooner once every delivery has started: it waits a little more for their
answers (at most ``STRAGGLER_WAIT_S``, less for a small ticket) and hands those still
unanswered on as above. Their sends go on in the dispatcher either way; a worker thread that
waits for slow answers starts nothing meanwhile, and an event's fan-out has only
``shard_queue_window`` shard steps queued at a time.

A step of the bulk lanes first sizes its ticket to what its dispatcher can start
within the slice beside the backlog it already has (``Dispatcher.budget``): the
rest is handed on at once, before its messages are built, rather than built and
withdrawn a second later.

The continuations are enqueued before the step's message is acked. A step that
fails or is interrupted (dramatiq's time limit) withdraws what has not started
before it raises, so its next run does not send those twice.

A subscriber whose sealed parts do not open (a key missing from ``NOTIFYD_SECRET_KEY``,
an altered record) gets no message: that delivery alone is recorded as not sent and
retried on its channel's schedule (``Unopenable``), and the step sends the others.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from channels.base import Message
from notifyd.ids import delivery_id
from notifyd.pipeline.asyncrunner import WAIT_SLICE_S
from notifyd.pipeline.dispatcher import Dispatchers, Ticket
from notifyd.pipeline.events import EventCache, LoadedEvent
from notifyd.pipeline.shaping import Shaper
from notifyd.pipeline.steps import StepQueue
from notifyd.state.sealing import SealError
from notifyd.state.subscribers import StoredSubscriber

#: (page_id, subscriber_id, target) -> the one-click unsubscribe URL that emails carry.
UnsubscribeLinks = Callable[[str, str, str], str]
#: (page_id, subscriber_id) -> the signed preference-page link every message carries.
ManageLinks = Callable[[str, str], str]
#: A stored subscriber -> its webhook secret in clear (SubscriberRepo.secret_of); raises
#: SealError when the subscriber's sealed parts do not open.
SecretOf = Callable[[StoredSubscriber], "str | None"]
#: Subscribers whose sealed parts did not open, with why -> recorded as not sent, to be retried
#: (OutcomeRecorder.unopenable).
Refused = list[tuple[StoredSubscriber, SealError]]
Unopenable = Callable[[LoadedEvent, Refused, int], None]
#: A stored subscriber -> its target in clear, a sealed Slack hook opened (SubscriberRepo.target_of).
TargetOf = Callable[[StoredSubscriber], str]
#: (seqs to continue later, whether their provider send times are reserved already)
#: -> the step and arguments that continue them.
Continuation = Callable[[list[int], bool], tuple[str, tuple[Any, ...]]]


def _as_stored(sub: StoredSubscriber) -> str:
    return sub.stored_target


#: A step whose deliveries have all started waits at most this long for their answers, and
#: STRAGGLER_WAIT_PER_DELIVERY_S per delivery of the ticket, then hands the unanswered on: real
#: endpoints answer a ticket's last sends 0.5-2 s after its first (p90 ~0.5 s, 1% hang to the
#: timeout). When steps waited until only a tenth were unanswered, a step held its thread ~0.7 s
#: per 500 deliveries, and with ``shard_queue_window`` (8) shard steps of a fan-out at a time the
#: dispatcher sat empty: the mixed profile of the end-to-end benchmark ran at ~5.5k/s with its
#: loop mostly idle. A retry of one delivery hands it on at once (a worker thread is worth some
#: 500 deliveries a second, not one).
STRAGGLER_WAIT_S = 0.2
STRAGGLER_WAIT_PER_DELIVERY_S = 0.002


class RecordingFailedError(RuntimeError):
    """Outcomes could not be recorded; the step fails and dramatiq runs it again."""


#: (page_id, channel, messages) -> the messages, rendered for each subscriber where it matters.
Personalize = Callable[[str, str, list[Message]], list[Message]]


class Sender:
    def __init__(
        self,
        *,
        dispatchers: Dispatchers,
        events: EventCache,
        queue: StepQueue,
        unsubscribe_url: UnsubscribeLinks,
        handoff_after_s: float,
        continuation_delay_ms: int,
        shaper: Shaper | None = None,
        manage_url: ManageLinks | None = None,
        personalize: Personalize | None = None,
        secret_of: SecretOf | None = None,
        unopenable: Unopenable | None = None,
        target_of: TargetOf | None = None,
    ) -> None:
        self.shaper = shaper
        #: Opens each webhook subscriber's sealed secret, at the last moment (never stored open).
        self.secret_of = secret_of
        #: Records the deliveries whose subscriber's sealed parts did not open (without it, the
        #: step raises the first SealError).
        self.unopenable = unopenable
        #: Opens each Slack hook's sealed URL, likewise; without it, targets are sent as stored.
        self.target_of = target_of
        self.dispatchers = dispatchers
        self.events = events
        self.queue = queue
        self.unsubscribe_url = unsubscribe_url
        self.handoff_after_s = handoff_after_s
        self.continuation_delay_ms = continuation_delay_ms
        #: (page_id, subscriber_id) -> the signed preference-page link every message carries.
        self.manage_url = manage_url
        #: Renders messages with the page's templates and each subscriber's language.
        self.personalize = personalize

    def messages(
        self, loaded: LoadedEvent, subs: Sequence[StoredSubscriber], attempt: int
    ) -> tuple[list[Message], list[int], Refused]:
        """The messages, the indexes in ``subs`` of the subscribers they are for, and the
        subscribers whose sealed parts did not open (no message: nothing can be sent to them)."""
        event = loaded.event
        notification = self.events.notification(loaded.ref)
        manage = self.manage_url
        secret_of = self.secret_of
        batch: list[Message] = []
        kept: list[int] = []
        refused: Refused = []
        target_of = self.target_of or _as_stored
        for i, s in enumerate(subs):
            try:
                target = target_of(s)
                secret = secret_of(s) if secret_of is not None and s.sealed_secret else None
            except SealError as exc:
                refused.append((s, exc))
                continue
            kept.append(i)
            batch.append(
                Message(
                    delivery_id=delivery_id(loaded.ref, s.id, s.channel),
                    subscriber_id=s.id,
                    target=target,
                    notification=notification,
                    attempt=attempt,
                    secret=secret,
                    unsubscribe_url=(
                        self.unsubscribe_url(s.page_id, s.id, target) if s.channel == "email" else None
                    ),
                    manage_url=(
                        manage(s.page_id, s.id) if manage is not None and s.channel != "webhook" else None
                    ),
                )
            )
        channels = [subs[i].channel for i in kept]
        return self._personalized(event.page_id, channels, batch), kept, refused

    def _personalized(self, page_id: str, channels: list[str], batch: list[Message]) -> list[Message]:
        """Each channel's messages rendered with the page's templates and each subscriber's language."""
        if self.personalize is None or not batch:
            return batch
        by_channel: dict[str, list[int]] = {}
        for i, channel in enumerate(channels):
            by_channel.setdefault(channel, []).append(i)
        out = list(batch)
        for channel, indexes in by_channel.items():
            rendered = self.personalize(page_id, channel, [batch[i] for i in indexes])
            for i, message in zip(indexes, rendered, strict=True):
                out[i] = message
        return out

    def send_and_record(
        self,
        loaded: LoadedEvent,
        subs: Sequence[StoredSubscriber],
        *,
        attempt: int,
        continuation: Continuation | None = None,
        shaped: bool = False,
    ) -> None:
        """Send, and return once every outcome is recorded, or the stragglers are handed on.

        ``shaped``: these deliveries' provider send times were reserved by an earlier step,
        which handed them on to come due now; they are paced, not reserved again.
        """
        if continuation is not None and not shaped:
            subs = self._sized(loaded, subs, continuation)
        at: list[float | None] | None = None
        if self.shaper is not None and subs:
            if shaped:
                at = self.shaper.paced(subs, time.time())
            else:
                plan = self.shaper.plan(subs)
                at = plan.at
                if plan.later and continuation is not None:
                    later = set()
                    for due, indexes in plan.later:
                        step, args = continuation([subs[i].seq for i in indexes], True)
                        delay_ms = max(0, int((due - time.time()) * 1000))
                        self.queue.enqueue(step, loaded.event.lane, args, delay_ms=delay_ms)
                        later.update(indexes)
                    keep = [i for i in range(len(subs)) if i not in later]
                    subs, at = [subs[i] for i in keep], [plan.at[i] for i in keep]
        if not subs:
            return
        dispatcher = self.dispatchers.for_lane(loaded.event.lane)
        dispatcher.yield_to_urgent()
        messages, kept, refused = self.messages(loaded, subs, attempt)
        if refused:
            # Recorded (a retry enqueued) before the others are submitted: a step that fails
            # after this finds them retrying when it runs again, and does not send them.
            if self.unopenable is None:
                raise refused[0][1]
            self.unopenable(loaded, refused, attempt)
            subs = [subs[i] for i in kept]
            at = [at[i] for i in kept] if at is not None else None
            if not subs:
                return
        ticket = Ticket(loaded, attempt, subs, messages, at)
        dispatcher.submit(ticket)
        # Every wait below has a deadline, and the loop must keep answering while it runs:
        # a worker whose loop is stuck fences itself (see AsyncRunner.wait).
        runner = dispatcher.runner
        try:
            if not _wait(ticket, self.handoff_after_s, continuation is not None) and continuation is not None:
                # The step's time is up. It keeps its thread only until one of its deliveries
                # has started (progress, however busy the dispatcher), then hands the rest on.
                runner.wait(lambda t: ticket.wait(t, started=1))
                if not ticket.finished:
                    self._hand_on(loaded, ticket, continuation)
                    return
            runner.wait(ticket.wait)
        except BaseException:
            # The step failed or was interrupted (dramatiq's time limit, a shutdown): what has
            # not started is not sent by this process, so the step's next run, which sends what
            # is not recorded, sends it once. Only what is in flight now can go twice.
            with contextlib.suppress(Exception):
                dispatcher.withdraw(ticket)
            raise
        if ticket.error is not None:
            raise RecordingFailedError("outcomes could not be recorded") from ticket.error

    def _sized(
        self, loaded: LoadedEvent, subs: Sequence[StoredSubscriber], continuation: Continuation
    ) -> Sequence[StoredSubscriber]:
        """The deliveries the dispatcher can start within this step's time slice; the rest are
        handed on now, at the back of the lane's queue, before their messages are built (they
        would only be withdrawn at the end of the slice)."""
        lane = loaded.event.lane
        budget = self.dispatchers.for_lane(lane).budget(self.handoff_after_s)
        if budget is None or len(subs) <= budget:
            return subs
        step, args = continuation([s.seq for s in subs[budget:]], False)
        self.queue.enqueue(step, lane, args)
        return subs[:budget]

    def _hand_on(self, loaded: LoadedEvent, ticket: Ticket, continuation: Continuation) -> None:
        """Free the step's thread: durable continuations for what is not recorded yet.

        What waits for a slot is withdrawn from the dispatcher (this process will not send it)
        and continued at once, at the back of the lane's queue, so that other events' steps get
        a thread in between. What is in flight, or held for its provider send time (reserved
        already: it keeps that time), is continued after the longest a send may take: by then
        this process has recorded it, unless it died.
        """
        lane = loaded.event.lane
        # Every delivery started: nothing to withdraw (and no wait for a turn of a busy loop).
        everything_started = ticket.started == len(ticket)
        unstarted = [] if everything_started else self.dispatchers.for_lane(lane).withdraw(ticket, held=False)
        if unstarted:
            step, args = continuation([ticket.subs[i].seq for i in unstarted], True)
            self.queue.enqueue(step, lane, args)
        rest = [s.seq for s in ticket.unrecorded()]
        if rest:
            delay_ms = self.continuation_delay_ms
            held_until = ticket.held_until()
            if held_until is not None:
                delay_ms += max(0, int((held_until - time.time()) * 1000))
            step, args = continuation(rest, True)
            self.queue.enqueue(step, lane, args, delay_ms=delay_ms)


def _wait(ticket: Ticket, seconds: float, hand_on: bool = False) -> bool:
    """Wait up to ``seconds`` for every outcome to be recorded (True), in slices: an exception
    raised into this thread (dramatiq's time limit) is only raised between blocking calls.

    ``hand_on``: once every delivery has started, wait a little more at most (see
    STRAGGLER_WAIT_S; False then): the slow or hung sends are handed on, and the thread goes to
    other steps. The ticket wakes this thread when the last delivery starts, not a slice later.
    """
    deadline = time.monotonic() + seconds
    if hand_on:
        if not _wait_until(lambda t: ticket.wait(t, started=len(ticket)), deadline):
            return False
        if ticket.finished:
            return True
        grace = min(STRAGGLER_WAIT_S, len(ticket) * STRAGGLER_WAIT_PER_DELIVERY_S)
        deadline = min(deadline, time.monotonic() + grace)
    return _wait_until(ticket.wait, deadline)


def _wait_until(ready: Callable[[float], bool], deadline: float) -> bool:
    while True:
        left = deadline - time.monotonic()
        if ready(min(WAIT_SLICE_S, max(0.0, left))):
            return True
        if left <= 0:
            return False
