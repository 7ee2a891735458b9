"""The worker's side of double opt-in: send a pending sign-up its confirmation.

- email: a signed confirmation link (a GET shows a page, its button POSTs);
- SMS: "reply YES", answered through the Twilio inbound webhook;
- Slack: the link, as a button;
- webhook: a signed ``subscription_confirmation`` carrying a challenge; an endpoint that
  answers 2xx and echoes the challenge is confirmed at once (as Slack's URL verification).

A transient failure is retried a few times with the broker's delayed messages.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence

from channels.base import Message, Notification, Outcome, OutcomeKind, Rendered
from notifyd.selfservice.links import Links
from notifyd.selfservice.optin import NotPending, OptIn, Pending
from notifyd.selfservice.pages import PageConfigRepo

log = logging.getLogger("notifyd.selfservice")

#: Delays before re-sending a confirmation that failed transiently.
CONFIRM_RETRY_DELAYS_S = (30, 120, 600)

Send = Callable[[str, Sequence[Message]], list[Outcome]]
Requeue = Callable[[str, int, int], None]
RenderConfirmation = Callable[[Pending, str], Rendered]


class ConfirmationStep:
    def __init__(
        self,
        *,
        optin: OptIn,
        links: Links,
        send: Send,
        requeue: Requeue,
        render: RenderConfirmation,
    ) -> None:
        self.optin = optin
        self.links = links
        self.pages = PageConfigRepo(optin.client, optin.keys)
        self.send = send
        self.requeue = requeue
        self.render = render

    def __call__(self, pending_id: str, attempt: int = 1) -> None:
        pending = self.optin.get(pending_id)
        if pending is None:
            return  # confirmed or expired meanwhile
        message = self.message(pending, attempt)
        (outcome,) = self.send(pending.channel, [message])
        if outcome.kind is OutcomeKind.delivered:
            if pending.channel == "webhook":
                with contextlib.suppress(NotPending):
                    self.optin.confirm(pending_id, via="webhook-challenge")
            return
        if outcome.kind is OutcomeKind.transient and attempt <= len(CONFIRM_RETRY_DELAYS_S):
            self.requeue(pending_id, attempt + 1, CONFIRM_RETRY_DELAYS_S[attempt - 1] * 1000)
            return
        log.info("confirmation %s to a %s target failed: %s", pending_id, pending.channel, outcome.reason)
        self.optin.record(
            pending.page_id,
            "confirmation_failed",
            channel=pending.channel,
            pending=pending_id,
            reason=outcome.reason,
        )

    def message(self, pending: Pending, attempt: int) -> Message:
        url = self.links.confirm_url(pending.page_id, pending.id)
        payload: dict[str, object] = {"type": "subscription_confirmation", "page_id": pending.page_id}
        challenge = None
        if pending.channel == "webhook":
            challenge = "chl_" + secrets.token_urlsafe(24)
            payload["challenge"] = challenge
        notification = Notification(
            event_id=f"confirm-{pending.id}",
            event_type="subscription_confirmation",
            page_id=pending.page_id,
            occurred_at="",
            title="Confirm your subscription",
            status="pending",
            impact="none",
            message="",
            components=(),
            payload=payload,
            link=url,
        )
        return Message(
            delivery_id=f"confirm-{pending.id}-{attempt}",
            subscriber_id=f"pending-{pending.id}",
            target=pending.target,
            notification=notification,
            attempt=attempt,
            secret=pending.subscriber.get("secret"),
            rendered=None if challenge else self.render(pending, url),
            expect_echo=challenge,
        )
