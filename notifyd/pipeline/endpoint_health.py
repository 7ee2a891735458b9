"""Dead endpoints: quarantine after repeated failures, and tell the owner once.

Statuspage's rule: after 10 exhausted or failed deliveries within an hour, an
endpoint is quarantined (the subscriber is disabled with reason
``quarantined``) until an operator reactivates it (re-adding or re-importing the
target does not: a nightly sync would otherwise undo every quarantine).
If the subscriber gave a ``contact_email``, that address is told that the
endpoint is unreachable, at most once a day.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from channels.base import Message, Notification
from notifyd.ids import delivery_id
from notifyd.pipeline.ratelimit import BatchRateLimiter
from notifyd.state import quarantine
from notifyd.state.keys import Keys
from notifyd.state.subscribers import StoredSubscriber, SubscriberRepo

#: Channels whose endpoints belong to the subscriber (a dead mailbox is handled by SMTP codes).
WATCHED_CHANNELS = ("webhook", "slack")
#: The tenth failure within the hour is the first one that finds a 9/hour window full.
QUARANTINE_RATE = "9/hour"
NOTICE_RATE = "1/day"


@dataclass(frozen=True, slots=True)
class Verdict:
    quarantine: list[StoredSubscriber]
    notify: list[StoredSubscriber]


def reactivate(
    client: redis.Redis,
    ns: str,
    subscribers: SubscriberRepo,
    page_id: str,
    sub_id: str,
    *,
    force: bool = False,
    actor: str = "unknown",
) -> StoredSubscriber | None:
    """Clear a disabled subscriber and its failure window, so that one more failure does not
    quarantine it again at once. None when the page has no such subscriber; an opt-out needs
    ``force`` (see :meth:`SubscriberRepo.reactivate`)."""
    sub = subscribers.reactivate(page_id, sub_id, force=force, actor=actor)
    if sub is not None:
        EndpointHealth(client, ns).forget_failures(sub.id)
        quarantine.forget(client, Keys(ns), page_id, sub.seq)
    return sub


class EndpointHealth:
    def __init__(self, client: redis.Redis, ns: str) -> None:
        self.client = client
        self.keys = Keys(ns)
        self.failures = BatchRateLimiter(client, rate=QUARANTINE_RATE, key_prefix=f"{ns}:quarantine")
        self.notices = BatchRateLimiter(client, rate=NOTICE_RATE, key_prefix=f"{ns}:notice")

    def on_failed(self, subs: Sequence[StoredSubscriber]) -> Verdict:
        watched = [s for s in subs if s.channel in WATCHED_CHANNELS]
        if not watched:
            return Verdict([], [])
        below = self.failures.hit_many([(s.id, "failed") for s in watched])
        quarantined = [s for s, ok in zip(watched, below, strict=True) if not ok]
        # Indexed for the dashboard; the caller disables them (the record stays the truth).
        quarantine.note(self.client, self.keys, quarantined, at=time.time())
        owners = [s for s in watched if s.contact_email]
        allowed = self.notices.hit_many([(s.id, "notice") for s in owners])
        return Verdict(quarantined, [s for s, ok in zip(owners, allowed, strict=True) if ok])

    def forget_failures(self, sub_id: str) -> None:
        self.client.delete(self.failures.key(sub_id, "failed"))


def notice_message(
    sub: StoredSubscriber, endpoint: str, event_id: str, reason: str, public_url: str, day: str
) -> Message:
    """The email that tells an endpoint's owner it is unreachable. It names the endpoint by its
    scheme and host only (``endpoint``: ``SubscriberRepo.endpoint``): a Slack hook's URL is a
    credential, and a webhook's path often is one."""
    assert sub.contact_email is not None
    text = (
        f"notifyd could not deliver status notifications for page {sub.page_id} to your {sub.channel} "
        f"endpoint {endpoint} (subscriber {sub.id}). Last error: {reason}. "
        "After 10 failures within an hour the endpoint is quarantined until the page's operator "
        "reactivates it."
    )
    notification = Notification(
        event_id=f"endpoint-notice-{event_id}",
        event_type="endpoint_unreachable",
        page_id=sub.page_id,
        occurred_at=day,
        title=f"Your {sub.channel} endpoint is unreachable",
        status="unreachable",
        impact="none",
        message=text,
        components=(),
        payload={"type": "endpoint_unreachable", "subscriber_id": sub.id, "page_id": sub.page_id},
        link=f"{public_url.rstrip('/')}/v1/subscribers/{sub.id}/deliveries",
    )
    return Message(
        delivery_id=delivery_id(f"endpoint-notice:{day}", sub.id, "email"),
        subscriber_id=sub.id,
        target=sub.contact_email,
        notification=notification,
    )
