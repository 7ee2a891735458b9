"""The one event builder for every test: API, pipeline, CLI and store.

``incident_event()`` and ``component_event()`` give a valid event with a fresh id,
occurring now. Store tests pin ids and times: ``component_event(event_id="e1",
status="operational", seconds=5)`` occurs 5 s after :data:`T0`. Only the page (and, for a
component, its id and status) may be given by position; any other top-level field is an override.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from notifyd.state.keys import event_ref

#: The fixed origin of the store tests' event times (see :func:`at`).
T0 = datetime(2026, 11, 28, 13, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    """ISO time ``seconds`` after :data:`T0`."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def ref(event: Mapping[str, Any]) -> str:
    """The event's ref (``keys.event_ref``): what notifyd keeps and tracks it by."""
    return event_ref(str(event["page_id"]), str(event["event_id"]))


def _occurred_at(seconds: float | None) -> str:
    if seconds is None:
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return at(seconds)


def _new_id() -> str:
    return f"ev-{uuid.uuid4().hex[:12]}"


def incident_event(
    page: str = "acme",
    *,
    event_id: str | None = None,
    status: str = "investigating",
    seconds: float | None = None,
    incident_id: str = "inc-1",
    kind: str | None = None,
    title: str = "Database outage",
    impact: str = "major",
    message: str = "",
    components: tuple[str, ...] = ("api", "db"),
    **overrides: Any,
) -> dict[str, Any]:
    """An incident event; ``kind`` defaults to created, updated or resolved after ``status``."""
    if kind is None:
        if status in ("resolved", "postmortem"):
            kind = "incident_resolved"
        else:
            kind = "incident_created" if status == "investigating" else "incident_updated"
    event: dict[str, Any] = {
        "event_id": event_id or _new_id(),
        "type": kind,
        "page_id": page,
        "occurred_at": _occurred_at(seconds),
        "incident": {
            "id": incident_id,
            "title": title,
            "status": status,
            "impact": impact,
            "message": message or f"{status} update",
            "components": list(components),
        },
    }
    event.update(overrides)
    return event


def component_event(
    page: str = "acme",
    component: str = "api",
    status: str = "major_outage",
    *,
    event_id: str | None = None,
    seconds: float | None = None,
    name: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A ``component_status_changed`` event; the name defaults to the upper-cased id."""
    event: dict[str, Any] = {
        "event_id": event_id or _new_id(),
        "type": "component_status_changed",
        "page_id": page,
        "occurred_at": _occurred_at(seconds),
        "component": {"id": component, "name": name or component.upper(), "status": status},
    }
    event.update(overrides)
    return event
