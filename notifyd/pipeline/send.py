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

from collections.abc import Callable, Sequence
from typing import Any

from channels.base import Message
from notifyd.ids import delivery_id
from notifyd.pipeline.dispatcher import Dispatcher, Ticket
from notifyd.pipeline.events import EventCache, LoadedEvent
from notifyd.pipeline.steps import StepQueue
from notifyd.state.subscribers import StoredSubscriber

#: (page_id, subscriber_id) -> the one-click unsubscribe URL that emails carry.
UnsubscribeLinks = Callable[[str, str], str]
#: The seqs still unrecorded -> the step and arguments that continue them later.
Continuation = Callable[[list[int]], tuple[str, tuple[Any, ...]]]


class RecordingFailedError(RuntimeError):
    """Outcomes could not be recorded; the step fails and dramatiq runs it again."""


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
    ) -> None:
        self.dispatcher = dispatcher
        self.events = events
        self.queue = queue
        self.unsubscribe_url = unsubscribe_url
        self.handoff_after_s = handoff_after_s
        self.continuation_delay_ms = continuation_delay_ms

    def messages(self, loaded: LoadedEvent, subs: Sequence[StoredSubscriber], attempt: int) -> list[Message]:
        event = loaded.event
        notification = self.events.notification(event.event_id)
        return [
            Message(
                delivery_id=delivery_id(event.event_id, s.id, s.channel),
                subscriber_id=s.id,
                target=s.target,
                notification=notification,
                attempt=attempt,
                secret=s.secret,
                unsubscribe_url=self.unsubscribe_url(s.page_id, s.id) if s.channel == "email" else None,
            )
            for s in subs
        ]

    def send_and_record(
        self,
        loaded: LoadedEvent,
        subs: Sequence[StoredSubscriber],
        *,
        attempt: int,
        continuation: Continuation | None = None,
    ) -> None:
        """Send, and return once every outcome is recorded, or the stragglers are handed on."""
        if not subs:
            return
        ticket = Ticket(loaded, attempt, subs, self.messages(loaded, subs, attempt))
        self.dispatcher.submit(ticket)
        if not ticket.wait(self.handoff_after_s) and continuation is not None:
            # Hand on only what has started: a delivery still queued here could otherwise
            # be sent by this process and by the continuation.
            ticket.wait(None, started=True)
            if not ticket.finished:
                seqs = [s.seq for s in ticket.unrecorded()]
                if seqs:
                    step, args = continuation(seqs)
                    self.queue.enqueue(step, loaded.event.lane, args, delay_ms=self.continuation_delay_ms)
                    return
        ticket.wait(None)
        if ticket.error is not None:
            raise RecordingFailedError("outcomes could not be recorded") from ticket.error
