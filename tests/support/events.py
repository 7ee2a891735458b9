"""Event builders for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def incident_event(page: str = "acme", **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}",
        "type": "incident_created",
        "page_id": page,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "incident": {
            "id": "inc-1",
            "title": "Database outage",
            "status": "investigating",
            "impact": "major",
            "message": "We are looking into it",
            "components": ["api", "db"],
        },
    }
    event.update(overrides)
    return event


def component_event(
    page: str = "acme", component: str = "api", status: str = "major_outage", **overrides: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex[:12]}",
        "type": "component_status_changed",
        "page_id": page,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "component": {"id": component, "name": component.upper(), "status": status},
    }
    event.update(overrides)
    return event
