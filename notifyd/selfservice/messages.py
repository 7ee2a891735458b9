"""The texts of self-service messages: the confirmation a pending sign-up receives."""

from __future__ import annotations

import html

from channels.base import Rendered
from notifyd.runtime.wiring import Runtime
from notifyd.selfservice.optin import Pending
from notifyd.selfservice.pages import PageConfigRepo


def render_confirmation(runtime: Runtime, pending: Pending, url: str) -> Rendered:
    config = PageConfigRepo(runtime.client, runtime.keys).get(pending.page_id)
    name = config.display_name(pending.page_id)
    subject = f"Confirm your subscription to {name} status updates"
    text = (
        f"Someone, hopefully you, asked to receive status updates from {name} at this address.\n\n"
        f"Confirm: {url}\n\nIf it was not you, ignore this message: nothing will be sent.\n"
    )
    body = (
        f"<p>Someone, hopefully you, asked to receive status updates from <b>{html.escape(name)}</b> "
        f"at this address.</p>"
        f'<p><a href="{html.escape(url)}">Confirm your subscription</a></p>'
        "<p>If it was not you, ignore this message: nothing will be sent.</p>"
    )
    sms = f"{name}: reply YES to receive status updates. Ignore this to receive nothing."
    slack = {
        "text": f"{subject}: {url}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": subject}},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Confirm"}, "url": url[:3000]}
                ],
            },
        ],
    }
    return Rendered(subject=subject, text=text, html=body, sms=sms, slack=slack)
