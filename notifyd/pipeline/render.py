"""Build the channel-neutral notification of an event, once per event per process."""

from __future__ import annotations

from typing import Any

from channels.base import Notification
from notifyd.models import Event

IMPACT_OF_COMPONENT = {
    "major_outage": "critical",
    "partial_outage": "major",
    "degraded_performance": "minor",
    "under_maintenance": "none",
    "operational": "none",
}


def notification_for(event: Event, page_state: dict[str, Any] | None, public_url: str) -> Notification:
    page = {
        "components": (page_state or {}).get("components", []),
        "open_incidents": (page_state or {}).get("open_incidents", []),
    }
    payload: dict[str, Any] = {
        "type": event.type.value,
        "event_id": event.event_id,
        "page_id": event.page_id,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
    }
    title: str
    status: str
    impact: str
    message: str
    components: list[str]
    if event.incident is not None:
        inc = event.incident
        payload["incident"] = inc.model_dump(mode="json")
        title, status, impact, message, components = (
            inc.title,
            inc.status,
            inc.impact,
            inc.message,
            inc.components,
        )
    else:
        assert event.component is not None
        comp = event.component
        payload["component"] = comp.model_dump(mode="json")
        title = comp.name or comp.id
        status, impact, message, components = comp.status, IMPACT_OF_COMPONENT[comp.status], "", [comp.id]
    payload["page"] = page
    return Notification(
        event_id=event.event_id,
        event_type=event.type.value,
        page_id=event.page_id,
        occurred_at=payload["occurred_at"],
        title=title,
        status=status,
        impact=impact,
        message=message,
        components=tuple(components),
        payload=payload,
        link=f"{public_url.rstrip('/')}/v1/pages/{event.page_id}/status",
    )
