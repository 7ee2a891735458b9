"""Hand a step's deliveries to the dispatcher, and wait until they are recorded or handed on.

A step (a shard, a retry) waits for its deliveries' outcomes to be recorded.
When some are still in flight after ``handoff_after_ms`` (a slow endpoint),
the step does not hold its worker thread for them: once every delivery has
*started*, it enqueues a delayed continuation for the unrecorded ones and
returns, so its queue message is acked. The continuation comes due after the
longest a send can take, plus a margin; by then the process has recorded
those outcomes, and the continuation finds nothing to do. If the process died
meanwhile, the continuation sends them again: at-least-once holds across a
crash, as it does for a shard that is re-run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from channels.base import Message
from notifyd.ids import delivery_id
from notifyd.pipeline.dispatcher import Dispatcher, Ticket
from notifyd.pipeline.events import EventCache, LoadedEvent
from notifyd.pipeline.shaping import Shaper
from notifyd.pipeline.steps import StepQueue
from notifyd.state.subscribers import StoredSubscriber

#: (page_id, subscriber_id, target) -> the one-click unsubscribe URL that emails carry.
UnsubscribeLinks = Callable[[str, str, str], str]
#: (page_id, subscriber_id) -> the signed preference-page link every message carries.
ManageLinks = Callable[[str, str], str]
#: A stored subscriber -> its webhook secret in clear (SubscriberRepo.secret_of).
SecretOf = Callable[[StoredSubscriber], "str | None"]
#: (seqs to continue later, whether their provider send times are reserved already)
#: -> the step and arguments that continue them.
Continuation = Callable[[list[int], bool], tuple[str, tuple[Any, ...]]]


class RecordingFailedError(RuntimeError):
    """Outcomes could not be recorded; the step fails and dramatiq runs it again."""


#: (page_id, channel, messages) -> the messages, rendered for each subscriber where it matters.
Personalize = Callable[[str, str, list[Message]], list[Message]]


class Sender:
    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        events: EventCache,
        queue: StepQueue,
        unsubscribe_url: UnsubscribeLinks,
        handoff_after_s: float,
        continuation_delay_ms: int,
        shaper: Shaper | None = None,
        manage_url: ManageLinks | None = None,
        personalize: Personalize | None = None,
        secret_of: SecretOf | None = None,
    ) -> None:
        self.shaper = shaper
        #: Opens each webhook subscriber's sealed secret, at the last moment (never stored open).
        self.secret_of = secret_of
        self.dispatcher = dispatcher
        self.events = events
        self.queue = queue
        self.unsubscribe_url = unsubscribe_url
        self.handoff_after_s = handoff_after_s
        self.continuation_delay_ms = continuation_delay_ms
        #: (page_id, subscriber_id) -> the signed preference-page link every message carries.
        self.manage_url = manage_url
        #: Renders messages with the page's templates and each subscriber's language.
        self.personalize = personalize

    def messages(self, loaded: LoadedEvent, subs: Sequence[StoredSubscriber], attempt: int) -> list[Message]:
        event = loaded.event
        notification = self.events.notification(event.event_id)
        manage = self.manage_url
        secret_of = self.secret_of
        batch = [
            Message(
                delivery_id=delivery_id(event.event_id, s.id, s.channel),
                subscriber_id=s.id,
                target=s.target,
                notification=notification,
                attempt=attempt,
                secret=secret_of(s) if secret_of is not None and s.sealed_secret else None,
                unsubscribe_url=(
                    self.unsubscribe_url(s.page_id, s.id, s.target) if s.channel == "email" else None
                ),
                manage_url=manage(s.page_id, s.id) if manage is not None and s.channel != "webhook" else None,
            )
            for s in subs
        ]
        return self._personalized(event.page_id, [s.channel for s in subs], batch)

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
        ticket = Ticket(loaded, attempt, subs, self.messages(loaded, subs, attempt), at)
        self.dispatcher.submit(ticket)
        # Every wait below has a deadline, and the loop must keep answering while it runs:
        # a worker whose loop is stuck fences itself (see AsyncRunner.wait).
        runner = self.dispatcher.runner
        if not ticket.wait(self.handoff_after_s) and continuation is not None:
            # Hand on only what has started: a delivery still queued here could otherwise
            # be sent by this process and by the continuation.
            runner.wait(lambda t: ticket.wait(t, started=True))
            if not ticket.finished:
                seqs = [s.seq for s in ticket.unrecorded()]
                if seqs:
                    step, args = continuation(seqs, True)
                    self.queue.enqueue(step, loaded.event.lane, args, delay_ms=self.continuation_delay_ms)
                    return
        runner.wait(ticket.wait)
        if ticket.error is not None:
            raise RecordingFailedError("outcomes could not be recorded") from ticket.error
