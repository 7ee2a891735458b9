"""The context a template sees, for a real message and for the sample a preview renders."""

from __future__ import annotations

from typing import Any

from channels._text import impact_colour, status_label
from channels.base import Notification
from notifyd import i18n
from notifyd.selfservice.pages import PageConfig

#: Variables every template may use (the preview and the docs list them).
VARIABLES = (
    "page_id",
    "page_name",
    "title",
    "status",
    "status_label",
    "impact",
    "impact_label",
    "impact_colour",
    "message",
    "components",
    "occurred_at",
    "event_type",
    "link",
    "follow_url",
    "manage_url",
    "unsubscribe_url",
    "branding",
    "locale",
)


def message_context(
    n: Notification,
    locale: str,
    config: PageConfig,
    *,
    manage_url: str | None = None,
    unsubscribe_url: str | None = None,
    follow_url: str | None = None,
) -> dict[str, Any]:
    tr = i18n.translations(locale)
    return {
        "page_id": n.page_id,
        "page_name": config.display_name(n.page_id),
        "title": n.title,
        "status": n.status,
        "status_label": tr.gettext(status_label(n.status)),
        "impact": n.impact,
        "impact_label": tr.gettext(n.impact),
        "impact_colour": impact_colour(n),
        "message": n.message,
        "components": list(n.components),
        "occurred_at": i18n.format_when(n.occurred_at, locale),
        "event_type": n.event_type,
        "link": n.link or "",
        "follow_url": follow_url,
        "manage_url": manage_url,
        "unsubscribe_url": unsubscribe_url,
        "branding": config.branding.model_dump(),
        "locale": locale,
    }


SAMPLE = Notification(
    event_id="inc-42-update-3",
    event_type="incident_updated",
    page_id="acme",
    occurred_at="2026-11-28T13:00:00Z",
    title="Database outage",
    status="identified",
    impact="critical",
    message="Failover in progress",
    components=("api", "db"),
    payload={},
    link="https://status.example.com/status/acme",
)


def sample_context(locale: str, config: PageConfig | None = None, **overrides: Any) -> dict[str, Any]:
    context = message_context(
        SAMPLE,
        locale,
        config or PageConfig(),
        manage_url="https://status.example.com/status/acme/preferences?token=sample",
        unsubscribe_url="https://status.example.com/v1/pages/acme/unsubscribe?subscriber=s&token=sample",
        follow_url="https://status.example.com/status/acme/subscribe?incident=inc-42",
    )
    context.update(overrides)
    return context
