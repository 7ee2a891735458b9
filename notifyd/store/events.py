"""Delta mutators for pipeline events: turn one validated event into a delta of the page state.

An event's stamp takes its physical part from the event's ``occurred_at`` (not from the time it
arrived), so a late event that is older than what the page already shows loses every LWW
comparison: it is recorded (seen-set, timeline) but changes nothing and is reported stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notifyd.store.errors import InvalidEventError, StoreError
from notifyd.store.hlc import COUNTER_BITS, COUNTER_MASK, ms_from_datetime, pack, physical_ms
from notifyd.store.state import INCIDENT_FIELDS, MAINTENANCE_KEY, IncidentState, PageState, StoreState
from notifyd.store.types import LWW, lww_beats

EVENT_TYPES = frozenset(
    {
        "incident_created",
        "incident_updated",
        "incident_resolved",
        "component_status_changed",
        "maintenance_scheduled",
        "maintenance_updated",
        "maintenance_started",
        "maintenance_completed",
        "maintenance_cancelled",
    }
)
#: The status a maintenance event gives its window.
MAINTENANCE_STATUS = {
    "maintenance_scheduled": "scheduled",
    "maintenance_updated": None,  # keeps the status it had
    "maintenance_started": "in_progress",
    "maintenance_completed": "completed",
    "maintenance_cancelled": "cancelled",
}


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What :meth:`StatusStore.apply_event` did.

    ``duplicate``: the event id was already in the replicated seen-set; nothing was applied.
    ``stale``: every register the event touched already held a newer write; nothing changed
    (the event is still recorded: its id is remembered and an incident update joins the timeline).
    ``changed``: at least one register now shows a different value.
    ``hlc``: the stamp the event's writes carry (0 for a duplicate).
    ``unbacked``: asked to ``require_effect``, the id was marked seen but nothing of the event
    was in the state (see :func:`shows_event`): a mark without the event behind it is a claim,
    not a duplicate, so the event was applied.
    """

    duplicate: bool
    stale: bool
    changed: bool
    hlc: int = 0
    unbacked: bool = False


def event_key(page_id: str, event_id: str) -> int:
    """64-bit hash of a page's event id: the seen-set stores 8 bytes per id whatever its length.

    Event ids are unique per page only, so the page is part of what is hashed: page B's event
    ``X`` is not a duplicate of page A's. (Ids seen before the page was hashed in are not
    recognised; see docs/operations.md, "Event ids are per page".)"""
    text = f"{page_id}\x1f{event_id}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def shows_event(page: PageState | None, event: Mapping[str, Any], event_ms: int) -> bool:
    """Whether ``page`` shows ``event`` applied: its entry in the incident's (or maintenance's)
    timeline, or the incident's tombstone at least as new as the event (the timeline was
    compacted away), or a component register at least as new as the event.

    A region that takes an event marks its id seen and applies it in one delta, so a peer's
    mark arrives with the event's effect. A mark alone is a claim nothing backs: a peer
    pre-seeding the id of an event it never took, so that the real one looks like a duplicate.
    Timeline entries removed since (``remove_timeline_entry``) no longer back their ids.
    """
    if page is None:
        return False
    etype = str(event.get("type", ""))
    if etype == "component_status_changed":
        reg = page.components.get(str((event.get("component") or {}).get("id", "")))
        return reg is not None and physical_ms(reg.hlc) >= event_ms
    maintenance = etype.startswith("maintenance_")
    about = event.get("maintenance" if maintenance else "incident") or {}
    iid = str(about.get("id", "")) if isinstance(about, Mapping) else ""
    inc = page.incidents.get(MAINTENANCE_KEY + iid if maintenance else iid)
    if inc is None:
        return False
    if inc.tomb and physical_ms(inc.tomb) >= event_ms:
        return True
    event_id = str(event.get("event_id", ""))
    return any(isinstance(entry, tuple) and entry[0] == event_id for entry in inc.timeline.entries)


def event_ms_of(event: Mapping[str, Any], *, now_ms: int, max_offset_ms: int) -> int:
    """The event's time in ms, clamped to ``max_offset_ms`` ahead of now (see :func:`plan_event`)."""
    try:
        event_ms = ms_from_datetime(_require(event, "occurred_at", ""))
    except StoreError as exc:
        raise InvalidEventError(str(exc)) from exc
    return max(0, min(event_ms, now_ms + max_offset_ms))


def taken(state: StoreState, event: Mapping[str, Any], *, now_ms: int, max_offset_ms: int) -> bool:
    """Whether a region took ``event``: its id is marked seen and the state shows its effect."""
    key = event_key(str(event.get("page_id", "")), str(event.get("event_id", "")))
    if not state.seen.contains(key, now_ms // 1000):
        return False
    event_ms = event_ms_of(event, now_ms=now_ms, max_offset_ms=max_offset_ms)
    return shows_event(state.pages.get(str(event.get("page_id", ""))), event, event_ms)


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return mapping[key]
    except (KeyError, TypeError):
        raise InvalidEventError(f"event is missing {where}{key!r}") from None


def event_stamp(event_ms: int, touched: list[LWW | None]) -> int:
    """Stamp from the event's own time; the counter only orders writes in the same millisecond.

    Within one millisecond the event that arrives later wins (counter one above the newest
    register write at that millisecond), which keeps e.g. ``created`` then ``updated`` in order
    when publishers send second-resolution times.
    """
    counter = -1
    for reg in touched:
        if reg is not None and reg.hlc >> COUNTER_BITS == event_ms:
            counter = max(counter, reg.hlc & COUNTER_MASK)
    counter += 1
    if counter > COUNTER_MASK:
        return pack(event_ms + 1, 0)
    return pack(event_ms, counter)


@dataclass(slots=True)
class EventPlan:
    delta: StoreState
    result: ApplyResult


def plan_event(
    state: StoreState,
    event: Mapping[str, Any],
    *,
    node: str,
    now_ms: int,
    max_offset_ms: int,
    ttl_s: int,
    require_effect: bool = False,
) -> EventPlan:
    """Build the delta for ``event`` against ``state`` without touching ``state``.

    A seen id makes the event a duplicate; with ``require_effect``, only when the state also
    shows the event (:func:`shows_event`), which is how the pipeline tells a region that took
    the event from a peer that only claims it did.

    An ``occurred_at`` more than ``max_offset_ms`` ahead of local time is clamped to that bound
    (not refused): the event is already accepted upstream, and clamping at the origin keeps
    every replica on the same stamp.
    """
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"event must be a mapping, got {type(event).__name__}")
    event_id = _require(event, "event_id", "")
    etype = _require(event, "type", "")
    page_id = _require(event, "page_id", "")
    if etype not in EVENT_TYPES:
        raise InvalidEventError(f"unknown event type {etype!r}; expected one of {sorted(EVENT_TYPES)}")
    event_ms = event_ms_of(event, now_ms=now_ms, max_offset_ms=max_offset_ms)

    delta = StoreState()
    key = event_key(str(page_id), str(event_id))
    now_s = now_ms // 1000
    page = state.pages.get(page_id)
    marked = state.seen.contains(key, now_s)
    if marked and (not require_effect or shows_event(page, event, event_ms)):
        return EventPlan(delta, ApplyResult(duplicate=True, stale=False, changed=False))
    delta.seen.items[key] = now_s + ttl_s

    dpage = PageState()
    if etype == "component_status_changed":
        comp = _require(event, "component", "")
        cid = _require(comp, "id", "component.")
        status = _require(comp, "status", "component.")
        cur = page.components.get(cid) if page is not None else None
        name = comp.get("name") or (cur.value[0] if cur is not None else cid)
        stamp = event_stamp(event_ms, [cur])
        reg = LWW(stamp, node, (name, status))
        won = lww_beats(reg, cur)
        if won:
            dpage.components[cid] = reg
        changed = won and (cur is None or cur.value != reg.value)
        stale = not won
    else:
        # A maintenance is kept like an incident (LWW fields and a timeline) under its own key.
        maintenance = etype.startswith("maintenance_")
        inc = _require(event, "maintenance" if maintenance else "incident", "")
        iid = _require(inc, "id", "maintenance." if maintenance else "incident.")
        values: dict[str, Any] = {}
        for name in INCIDENT_FIELDS:
            if inc.get(name) is not None:
                values[name] = inc[name]
        if maintenance:
            iid = MAINTENANCE_KEY + str(iid)
            values.pop("impact", None)
            values.pop("status", None)
            if MAINTENANCE_STATUS[etype] is not None:
                values["status"] = MAINTENANCE_STATUS[etype]
        if "components" in values:
            values["components"] = tuple(values["components"])
        if etype == "incident_resolved" and "status" not in values:
            values["status"] = "resolved"
        cur_inc = page.incidents.get(iid) if page is not None else None
        cur_fields = cur_inc.fields if cur_inc is not None else {}
        # A compacted incident's tombstone counts as a write of every field at its stamp.
        tomb = cur_inc.tomb if cur_inc is not None else 0
        touched = [cur_fields.get(n) for n in values]
        stamp = event_stamp(event_ms, [*touched, LWW(tomb, "", None)] if tomb else touched)
        dinc = IncidentState()
        changed = False
        won_any = False
        for name, value in values.items():
            reg = LWW(stamp, node, value)
            old = cur_fields.get(name)
            if stamp > tomb and lww_beats(reg, old):
                dinc.fields[name] = reg
                won_any = True
                changed = changed or old is None or old.value != value
        stale = bool(values) and not won_any
        # The timeline records every update, stale or not: it is history, not current state.
        entry = (str(event_id), str(values.get("status", "")), str(inc.get("message") or ""), event_ms)
        timeline = cur_inc.timeline if cur_inc is not None else IncidentState().timeline
        dinc.timeline = timeline.add_delta(entry, node)
        dpage.incidents[iid] = dinc
    if not dpage.is_empty():
        delta.pages[page_id] = dpage
    return EventPlan(
        delta, ApplyResult(duplicate=False, stale=stale, changed=changed, hlc=stamp, unbacked=marked)
    )
