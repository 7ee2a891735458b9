"""Ingest filters: small units, each with one job and one counter.

A filter looks at an event (and what the status store made of it) and
returns the reason the event must deliver nothing, or None to let it pass.
Adding a rule means adding a unit to :data:`INGEST_FILTERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from notifyd.models import Event
from notifyd.pipeline.metrics import EVENTS_FILTERED


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
