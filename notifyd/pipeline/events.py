"""The accepted event as the delivery steps see it: parsed once, rendered once, per process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from channels.base import Notification
from notifyd.models import Event
from notifyd.pipeline.render import notification_for
from notifyd.state.tracking import Tracker

#: Events whose parsed form and rendered notification a process keeps at once.
CACHED_EVENTS = 256


class PageStatusSource(Protocol):
    """The status store as the pipeline reads it (``notifyd.store.StatusStore``)."""

    def page_status(self, page_id: str) -> dict[str, Any]: ...


class StatusStoreLike(PageStatusSource, Protocol):
    def apply_event(self, event: dict[str, Any], *, require_effect: bool = ...) -> Any: ...

    def seen(self, page_id: str, event_id: str) -> bool: ...

    def taken(self, event: dict[str, Any]) -> bool: ...


@dataclass(frozen=True, slots=True)
class LoadedEvent:
    event: Event
    accepted_at: float
    #: What it was loaded by (``keys.event_ref``): every write about this event goes there.
    ref: str

    def offset(self) -> int:
        """Whole seconds since acceptance: what a tracking record stores as its time."""
        return max(0, int(time.time() - self.accepted_at))


class EventCache:
    def __init__(self, tracker: Tracker, store: PageStatusSource | None, public_url: str) -> None:
        self.tracker = tracker
        self.store = store
        self.public_url = public_url
        self.load = lru_cache(maxsize=CACHED_EVENTS)(self._load)
        self.notification = lru_cache(maxsize=CACHED_EVENTS)(self._notification)

    def _load(self, ref: str) -> LoadedEvent | None:
        h = self.tracker.event_hash(ref)
        if h is None or "body" not in h:
            return None
        return LoadedEvent(
            Event.model_validate_json(h["body"]), float(h.get("accepted_at", time.time())), ref
        )

    def _notification(self, ref: str) -> Notification:
        loaded = self.load(ref)
        assert loaded is not None
        page_state = self.store.page_status(loaded.event.page_id) if self.store is not None else None
        return notification_for(loaded.event, page_state, self.public_url)
