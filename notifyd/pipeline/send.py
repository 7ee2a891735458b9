"""Hand a set of subscribers' deliveries of one event to the adapters, and record the outcomes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from channels.base import Message
from notifyd.ids import delivery_id
from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.events import EventCache, LoadedEvent
from notifyd.pipeline.outcomes import OutcomeRecorder
from notifyd.state.subscribers import StoredSubscriber

#: Outcomes are recorded after every chunk this size, so a worker killed mid-shard
#: loses at most one chunk of "delivered" records (which the re-run then resends).
SEND_CHUNK = 100

#: (page_id, subscriber_id) -> the one-click unsubscribe URL that emails carry.
UnsubscribeLinks = Callable[[str, str], str]


class Sender:
    def __init__(
        self,
        *,
        adapters: AdapterPool,
        events: EventCache,
        recorder: OutcomeRecorder,
        unsubscribe_url: UnsubscribeLinks,
    ) -> None:
        self.adapters = adapters
        self.events = events
        self.recorder = recorder
        self.unsubscribe_url = unsubscribe_url

    def send_and_record(self, loaded: LoadedEvent, subs: Sequence[StoredSubscriber], *, attempt: int) -> None:
        if not subs:
            return
        by_channel: dict[str, list[StoredSubscriber]] = defaultdict(list)
        for sub in subs:
            by_channel[sub.channel].append(sub)
        for channel, members in by_channel.items():
            for first in range(0, len(members), SEND_CHUNK):
                self._send_chunk(loaded, channel, members[first : first + SEND_CHUNK], attempt)

    def _send_chunk(
        self, loaded: LoadedEvent, channel: str, members: Sequence[StoredSubscriber], attempt: int
    ) -> None:
        event = loaded.event
        notification = self.events.notification(event.event_id)
        batch = [
            Message(
                delivery_id=delivery_id(event.event_id, s.id, channel),
                subscriber_id=s.id,
                target=s.target,
                notification=notification,
                attempt=attempt,
                secret=s.secret,
                unsubscribe_url=self.unsubscribe_url(s.page_id, s.id) if channel == "email" else None,
            )
            for s in members
        ]
        results = list(zip(members, self.adapters.send(channel, batch), strict=True))
        self.recorder.record(loaded, results, attempt)
