"""Render a notification as a Slack message: Block Kit inside a coloured attachment.

The attachment's ``color`` draws the impact bar down the left side, which
blocks alone cannot do; ``text`` is the fallback for notifications and
clients without Block Kit.
"""

from __future__ import annotations

from typing import Any

from channels._text import impact_colour, one_line, status_label
from channels.base import Notification

#: Slack's limits, declared once.
HEADER_MAX = 150
SECTION_MAX = 3000
FALLBACK_MAX = 4000


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback_text(n: Notification) -> str:
    return _cut(escape(one_line(f"[{n.page_id}] {n.title} — {status_label(n.status)}")), FALLBACK_MAX)


def blocks(n: Notification, manage_url: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(one_line(n.title) or "-", HEADER_MAX)},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Status*\n{escape(status_label(n.status))}"},
                {"type": "mrkdwn", "text": f"*Impact*\n{escape(n.impact)}"},
            ],
        },
    ]
    if n.message:
        out.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(escape(n.message), SECTION_MAX)}}
        )
    if n.components:
        listed = ", ".join(f"`{escape(c)}`" for c in n.components)
        out.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(f"*Affected:* {listed}", SECTION_MAX)},
            }
        )
    context = f"{escape(n.page_id)} · {escape(n.occurred_at)}"
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, SECTION_MAX)}]})
    buttons: list[dict[str, Any]] = []
    if n.link:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "View status page"},
                "url": n.link[:3000],
                "action_id": "notifyd_status_page",
            }
        )
    if n.follow_url:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Follow this incident"},
                "url": n.follow_url[:3000],
                "action_id": "notifyd_follow_incident",
            }
        )
    if manage_url:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Manage subscription"},
                "url": manage_url[:3000],
                "action_id": "notifyd_manage_subscription",
            }
        )
    if buttons:
        out.append({"type": "actions", "elements": buttons})
    return out


def payload(n: Notification, manage_url: str | None = None) -> dict[str, Any]:
    """The body shared by incoming webhooks and ``chat.postMessage`` (which adds ``channel``)."""
    return {
        "text": fallback_text(n),
        "attachments": [
            {"color": impact_colour(n), "fallback": fallback_text(n), "blocks": blocks(n, manage_url)}
        ],
        "unfurl_links": False,
        "unfurl_media": False,
    }
