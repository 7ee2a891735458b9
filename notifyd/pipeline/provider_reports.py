"""What a provider reports after it accepted a message: an SMS status callback saying the
carrier could not deliver it. The delivery was recorded ``delivered`` when Twilio took it;
the report moves it to ``failed`` and, for a number that can never work, disables the
subscriber, as a synchronous refusal would have."""

from __future__ import annotations

import time

from channels.base import DISABLING_REASONS
from notifyd.ids import delivery_id
from notifyd.runtime.wiring import Runtime
from notifyd.state.keys import split_ref
from notifyd.state.tracking import Record, Update


class UnknownDelivery(LookupError):
    pass


def locate_delivery(rt: Runtime, event_id: str, subscriber_id: str, channel: str, claimed_id: str) -> str:
    """The ref (``keys.event_ref``) of the event whose delivery has this id.

    The callback names the event by its id, which several pages may use; the delivery id,
    derived from the ref and covered by the provider's signature, says which page's it is."""
    for ref, _ in rt.tracker.refs(event_id):
        if delivery_id(ref, subscriber_id, channel) == claimed_id:
            return ref
    raise UnknownDelivery(f"no {channel} delivery {claimed_id!r}")


def provider_failed(rt: Runtime, ref: str, subscriber_id: str, *, reason: str | None, error: str) -> bool:
    """Record that the provider could not deliver; False when there was nothing delivered to undo."""
    event_id = split_ref(ref)[1]
    h = rt.tracker.event_hash(ref)
    if h is None or "page_id" not in h:
        raise UnknownDelivery(f"no event {event_id!r}")
    sub = rt.subscribers.get(h["page_id"], subscriber_id)
    if sub is None:
        raise UnknownDelivery(f"no subscriber {subscriber_id!r} on page {h['page_id']!r}")
    previous = rt.tracker.records(ref, [sub.seq]).get(sub.seq)
    if previous is None:
        raise UnknownDelivery(f"no delivery to {subscriber_id!r} for event {event_id!r}")
    offset = max(0, int(time.time() - float(h.get("accepted_at", time.time()))))
    before = rt.tracker.provider_failed(
        ref, [Update(sub.seq, Record("failed", previous.attempts, offset, error))]
    )
    if reason in DISABLING_REASONS:
        rt.subscribers.disable(sub.page_id, sub.seq, reason)
    return bool(before and before[0] is not None and before[0].status == "delivered")
