"""A subscriber's delivery preferences: which kinds of event, from what impact, and when.

Every field is optional. What a subscriber leaves out falls back to its
channel's default (:data:`CHANNEL_DEFAULTS`): SMS costs money per message, so
it hears only that an incident opened or resolved and that a maintenance
started; every other channel hears everything. The stored form is a few
short keys inside the subscriber's record (see ``state/subscribers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

EVENT_KINDS = ("incident", "maintenance", "component")
INCIDENT_PHASES = ("created", "updated", "resolved")
MAINTENANCE_PHASES = ("scheduled", "updated", "started", "completed", "cancelled")
IMPACT_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class ChannelDefaults:
    event_types: frozenset[str] = frozenset(EVENT_KINDS)
    incident_phases: frozenset[str] = frozenset(INCIDENT_PHASES)
    maintenance_phases: frozenset[str] = frozenset(MAINTENANCE_PHASES)


#: What a subscriber who set nothing hears, per channel.
CHANNEL_DEFAULTS: dict[str, ChannelDefaults] = {
    "sms": ChannelDefaults(
        event_types=frozenset({"incident", "maintenance"}),
        incident_phases=frozenset({"created", "resolved"}),
        maintenance_phases=frozenset({"started"}),
    ),
}
EVERYTHING = ChannelDefaults()


def defaults_for(channel: str) -> ChannelDefaults:
    return CHANNEL_DEFAULTS.get(channel, EVERYTHING)


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Local wall-clock hours in which only what is allowed through goes out at once."""

    tz: str
    start: time
    end: time
    allow_critical: bool = True

    def end_after(self, now: float) -> float | None:
        """When the window that contains ``now`` (epoch seconds) ends; None when ``now`` is outside."""
        zone = ZoneInfo(self.tz)
        local = datetime.fromtimestamp(now, zone)
        start = datetime.combine(local.date(), self.start, zone)
        end = datetime.combine(local.date(), self.end, zone)
        if self.start == self.end:
            return None
        if self.start < self.end:  # e.g. 12:00-14:00, within one day
            return end.timestamp() if start <= local < end else None
        # Over midnight, e.g. 22:00-07:00
        if local >= start:
            return (end + timedelta(days=1)).timestamp()
        if local < end:
            return end.timestamp()
        return None

    def encode(self) -> list[Any]:
        return [self.tz, self.start.strftime("%H:%M"), self.end.strftime("%H:%M"), int(self.allow_critical)]

    @classmethod
    def decode(cls, raw: list[Any]) -> QuietWindow:
        return cls(raw[0], time.fromisoformat(raw[1]), time.fromisoformat(raw[2]), bool(raw[3]))

    def public(self) -> dict[str, Any]:
        tz, start, end, allow = self.encode()
        return {"tz": tz, "start": start, "end": end, "allow_critical": bool(allow)}


@dataclass(frozen=True, slots=True)
class Preferences:
    """None means "the channel's default"."""

    event_types: frozenset[str] | None = None
    min_impact: str | None = None
    incident_phases: frozenset[str] | None = None
    quiet_hours: QuietWindow | None = None

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.event_types is not None:
            out["et"] = sorted(self.event_types)
        if self.min_impact is not None:
            out["mi"] = self.min_impact
        if self.incident_phases is not None:
            out["ph"] = sorted(self.incident_phases)
        if self.quiet_hours is not None:
            out["qh"] = self.quiet_hours.encode()
        return out

    @classmethod
    def decode(cls, record: dict[str, Any]) -> Preferences:
        if not ("et" in record or "mi" in record or "ph" in record or "qh" in record):
            return NO_PREFERENCES
        et, ph, qh = record.get("et"), record.get("ph"), record.get("qh")
        return cls(
            event_types=frozenset(et) if et is not None else None,
            min_impact=record.get("mi"),
            incident_phases=frozenset(ph) if ph is not None else None,
            quiet_hours=QuietWindow.decode(qh) if qh is not None else None,
        )

    @classmethod
    def from_fields(
        cls,
        *,
        event_types: list[str] | None,
        min_impact: str | None,
        incident_phases: list[str] | None,
        quiet_hours: dict[str, Any] | None,
    ) -> Preferences:
        return cls(
            event_types=frozenset(event_types) if event_types is not None else None,
            min_impact=min_impact,
            incident_phases=frozenset(incident_phases) if incident_phases is not None else None,
            quiet_hours=QuietWindow(
                quiet_hours["tz"],
                time.fromisoformat(quiet_hours["start"]),
                time.fromisoformat(quiet_hours["end"]),
                bool(quiet_hours.get("allow_critical", True)),
            )
            if quiet_hours is not None
            else None,
        )

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.event_types is not None:
            out["event_types"] = sorted(self.event_types)
        if self.min_impact is not None:
            out["min_impact"] = self.min_impact
        if self.incident_phases is not None:
            out["incident_phases"] = sorted(self.incident_phases)
        if self.quiet_hours is not None:
            out["quiet_hours"] = self.quiet_hours.public()
        return out


NO_PREFERENCES = Preferences()
