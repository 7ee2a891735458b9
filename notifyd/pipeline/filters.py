"""Filters: small units, each with one job and one counter.

An ingest filter looks at an event (and what the status store made of it)
and returns the reason the event must deliver nothing, or None to let it
pass. A subscriber filter looks at an event and one subscriber's
preferences, in the shard, before the rate limit. Adding a rule means adding
a unit to :data:`INGEST_FILTERS` or :data:`SUBSCRIBER_FILTERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from notifyd.models import Event
from notifyd.pipeline.metrics import EVENTS_FILTERED
from notifyd.pipeline.render import IMPACT_OF_COMPONENT
from notifyd.preferences import IMPACT_RANK, Preferences, defaults_for


@dataclass(frozen=True, slots=True)
class StoreVerdict:
    """What applying the event to the status store found."""

    duplicate: bool = False
    stale: bool = False


class IngestFilter(Protocol):
    name: str

    def reason(self, event: Event, verdict: StoreVerdict) -> str | None: ...


class ReplicatedDuplicate:
    """Another region already took this event id (seen through the store's replicated set)."""

    name = "replicated_duplicate"

    def reason(self, event: Event, verdict: StoreVerdict) -> str | None:
        return "event id already taken by a peer region" if verdict.duplicate else None


class StaleEvent:
    """An event older than the state it would change is recorded, not notified."""

    name = "stale"

    def reason(self, event: Event, verdict: StoreVerdict) -> str | None:
        return "older than the current state" if verdict.stale else None


class NotifyFlag:
    """``notify: false`` records the event and delivers nothing."""

    name = "notify_false"

    def reason(self, event: Event, verdict: StoreVerdict) -> str | None:
        return "notify is false" if not event.notify else None


INGEST_FILTERS: tuple[IngestFilter, ...] = (ReplicatedDuplicate(), StaleEvent(), NotifyFlag())


def first_reason(
    event: Event, verdict: StoreVerdict, filters: tuple[IngestFilter, ...] = INGEST_FILTERS
) -> str | None:
    for unit in filters:
        reason = unit.reason(event, verdict)
        if reason is not None:
            EVENTS_FILTERED.labels(unit.name).inc()
            return f"{unit.name}: {reason}"
    return None


# -- subscriber filters: run in the shard, per subscriber, before the rate limit --------------


@dataclass(frozen=True, slots=True)
class EventView:
    """What the subscriber filters need to know about an event."""

    kind: str  # incident | maintenance | component | other
    phase: str | None  # created/updated/resolved for incidents, scheduled/started/... for maintenances
    impact: str | None  # None when the event has no impact (maintenances)
    #: What the event is about, so that a newer one can supersede it: "i:<incident id>", ...
    about: str | None = None
    components: frozenset[str] = frozenset()

    @classmethod
    def of(cls, event: Event) -> EventView:
        kind, _, phase = event.type.value.partition("_")
        touched = frozenset(event.components_touched())
        if event.incident is not None and kind == "incident":
            return cls("incident", phase, event.incident.impact, f"i:{event.incident.id}", touched)
        if event.component is not None:
            impact = IMPACT_OF_COMPONENT.get(event.component.status, "none")
            return cls("component", None, impact, f"c:{event.component.id}", touched)
        maintenance = getattr(event, "maintenance", None)
        if kind == "maintenance" and maintenance is not None:
            return cls("maintenance", phase, None, f"m:{maintenance.id}", touched)
        return cls("other", None, None, None, touched)


class SubscriberFilter(Protocol):
    name: str

    def passes(self, view: EventView, prefs: Preferences, channel: str) -> bool: ...


class EventTypes:
    """Only the kinds of event the subscriber (or its channel's default) asked for."""

    name = "event_type"

    def passes(self, view: EventView, prefs: Preferences, channel: str) -> bool:
        if view.kind == "other":
            return True
        wanted = prefs.event_types if prefs.event_types is not None else defaults_for(channel).event_types
        return view.kind in wanted


class IncidentPhases:
    """Only the incident phases asked for: SMS hears created and resolved by default."""

    name = "incident_phase"

    def passes(self, view: EventView, prefs: Preferences, channel: str) -> bool:
        if view.kind != "incident" or view.phase is None:
            return True
        wanted = (
            prefs.incident_phases
            if prefs.incident_phases is not None
            else defaults_for(channel).incident_phases
        )
        return view.phase in wanted


class MaintenancePhases:
    """The channel's maintenance phases: SMS hears only that a maintenance started, unless the
    subscriber chose ``event_types`` itself (then it hears every phase)."""

    name = "maintenance_phase"

    def passes(self, view: EventView, prefs: Preferences, channel: str) -> bool:
        if view.kind != "maintenance" or view.phase is None or prefs.event_types is not None:
            return True
        return view.phase in defaults_for(channel).maintenance_phases


class MinImpact:
    """Incidents and component changes below the subscriber's ``min_impact`` stay quiet."""

    name = "min_impact"

    def passes(self, view: EventView, prefs: Preferences, channel: str) -> bool:
        if prefs.min_impact is None or view.impact is None:
            return True
        return IMPACT_RANK[view.impact] >= IMPACT_RANK[prefs.min_impact]


SUBSCRIBER_FILTERS: tuple[SubscriberFilter, ...] = (
    EventTypes(),
    IncidentPhases(),
    MaintenancePhases(),
    MinImpact(),
)


def subscriber_reason(
    view: EventView,
    prefs: Preferences,
    channel: str,
    filters: tuple[SubscriberFilter, ...] = SUBSCRIBER_FILTERS,
) -> str | None:
    """The name of the first filter that keeps this event from the subscriber, or None.

    The caller counts the reasons: once per delivery, in the tracking record (``filter:<name>``).
    """
    for unit in filters:
        if not unit.passes(view, prefs, channel):
            return unit.name
    return None
