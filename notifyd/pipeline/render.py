"""Build the channel-neutral notification of an event, once per event per process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from channels.base import Notification
from notifyd.models import Event

IMPACT_OF_COMPONENT = {
    "major_outage": "critical",
    "partial_outage": "major",
    "degraded_performance": "minor",
    "under_maintenance": "none",
    "operational": "none",
}


#: What a maintenance's phase shows as its status.
MAINTENANCE_STATUS = {
    "scheduled": "scheduled",
    "updated": "scheduled",
    "started": "in_progress",
    "completed": "completed",
    "cancelled": "cancelled",
}


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def notification_for(event: Event, page_state: dict[str, Any] | None, public_url: str) -> Notification:
    page = {
        "components": (page_state or {}).get("components", []),
        "open_incidents": (page_state or {}).get("open_incidents", []),
    }
    if (page_state or {}).get("maintenances"):
        page["maintenances"] = (page_state or {})["maintenances"]
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
    if event.maintenance is not None:
        m = event.maintenance
        payload["maintenance"] = m.model_dump(mode="json")
        phase = event.type.value.removeprefix("maintenance_")
        title, status, impact, components = m.title, MAINTENANCE_STATUS[phase], "none", m.components
        window = f"{_when(m.starts_at)} – {_when(m.ends_at)}"
        message = f"Scheduled maintenance {window}." + (f" {m.message}" if m.message else "")
    elif event.incident is not None:
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
        # The public status page: it needs no key (the operator route /v1/pages/{id}/status does).
        link=f"{public_url.rstrip('/')}/status/{quote(event.page_id, safe='')}",
        follow_url=(
            f"{public_url.rstrip('/')}/status/{quote(event.page_id, safe='')}/subscribe"
            f"?incident={quote(event.incident.id, safe='')}"
            if event.incident is not None and event.incident.status not in ("resolved", "postmortem")
            else None
        ),
    )
