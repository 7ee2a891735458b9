"""Shared helpers for the store tests: a steppable clock and event builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 28, 13, 0, 0, tzinfo=UTC)


class FakeClock:
    """A wall clock (seconds) that tests move by hand, backwards too."""

    def __init__(self, start: datetime = T0 + timedelta(hours=1)) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def at(seconds: float) -> str:
    """ISO time ``seconds`` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def component_event(
    event_id: str,
    status: str,
    *,
    seconds: float = 0,
    page: str = "acme",
    component: str = "api",
    name: str = "API",
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "component_status_changed",
        "page_id": page,
        "occurred_at": at(seconds),
        "priority": "high",
        "notify": True,
        "component": {"id": component, "name": name, "status": status},
    }


def incident_event(
    event_id: str,
    status: str,
    *,
    seconds: float = 0,
    page: str = "acme",
    incident: str = "inc-42",
    kind: str | None = None,
    title: str = "Database outage",
    impact: str = "critical",
    message: str = "",
    components: tuple[str, ...] = ("api", "db"),
) -> dict[str, Any]:
    if kind is None:
        kind = "incident_resolved" if status in ("resolved", "postmortem") else "incident_updated"
    return {
        "event_id": event_id,
        "type": kind,
        "page_id": page,
        "occurred_at": at(seconds),
        "priority": "critical",
        "notify": True,
        "incident": {
            "id": incident,
            "title": title,
            "status": status,
            "impact": impact,
            "message": message or f"{status} update",
            "components": list(components),
        },
    }
