"""The replicated state of every status page, built from the CRDTs in :mod:`notifyd.store.types`.

A delta has the same shape as the state, so one ``merge_in`` serves local writes, replicated
delta groups, full-state catch-up and log replay.  ``merge_in`` can also collect the part of the
incoming state that actually changed something (the *effective delta*): that is what the log
records and what is relayed to other peers, so no-op traffic is never re-sent.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from notifyd.store.hlc import iso_from_ms, physical_ms
from notifyd.store.types import LWW, ExpiringSet, ORSet, lww_beats

INCIDENT_FIELDS = ("title", "status", "impact", "components", "starts_at", "ends_at")
#: Incidents in these states are no longer "open" on the page.
CLOSED_STATUSES = frozenset({"resolved", "postmortem"})
#: Maintenances live beside incidents, keyed by this prefix and their id (ids are printable).
MAINTENANCE_KEY = "maintenance\x1f"
#: Maintenances in these states are no longer shown on the page.
MAINTENANCE_CLOSED = frozenset({"completed", "cancelled"})

#: A timeline entry: (event_id, status, message, at_ms).
TimelineEntry = tuple[str, str, str, int]


class IncidentState:
    """An incident's LWW fields and its timeline, plus ``tomb``: the stamp it was compacted at.

    A compacted incident keeps only its tombstone and its timeline's causal context (a few
    counters): every field register stamped at or below ``tomb`` is dropped, here and in
    whatever a late peer sends, so a replica that never saw the close cannot bring the incident
    back; the context keeps the timeline's dots unique if the id is used again.
    """

    __slots__ = ("fields", "timeline", "tomb")

    def __init__(self) -> None:
        self.fields: dict[str, LWW] = {}
        self.timeline = ORSet()
        self.tomb = 0

    def merge_in(self, other: IncidentState, effective: IncidentState | None = None) -> bool:
        changed = False
        fields = self.fields
        if other.tomb > self.tomb:
            self.tomb = other.tomb
            changed = True
            if effective is not None:
                effective.tomb = other.tomb
            for name in [n for n, reg in fields.items() if reg.hlc <= other.tomb]:
                del fields[name]
        tomb = self.tomb
        for name, reg in other.fields.items():
            if reg.hlc > tomb and lww_beats(reg, fields.get(name)):
                fields[name] = reg
                changed = True
                if effective is not None:
                    effective.fields[name] = reg
        if not other.timeline.is_empty() and self.timeline.merge_in(other.timeline):
            changed = True
            if effective is not None:
                effective.timeline = other.timeline.copy()
        return changed

    def copy(self) -> IncidentState:
        out = IncidentState()
        out.fields = dict(self.fields)
        out.timeline = self.timeline.copy()
        out.tomb = self.tomb
        return out

    def is_empty(self) -> bool:
        return not self.fields and self.timeline.is_empty() and not self.tomb

    def value(self, name: str, default: Any = None) -> Any:
        reg = self.fields.get(name)
        return default if reg is None else reg.value

    def newest_ms(self) -> int:
        """The physical time of the newest thing it holds: a field write or a timeline entry."""
        newest = max((physical_ms(reg.hlc) for reg in self.fields.values()), default=0)
        for entry in self.timeline.entries:
            newest = max(newest, entry[3])  # type: ignore[index]
        return newest

    def is_closed(self, incident_id: str) -> bool:
        """Resolved (an incident) or over (a maintenance); with no status, only a tombstone's remains."""
        status = self.value("status")
        if status is None:
            return True
        closed = MAINTENANCE_CLOSED if incident_id.startswith(MAINTENANCE_KEY) else CLOSED_STATUSES
        return status in closed

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IncidentState)
            and self.fields == other.fields
            and self.timeline == other.timeline
            and self.tomb == other.tomb
        )

    __hash__ = None  # type: ignore[assignment]


class PageState:
    __slots__ = ("components", "incidents")

    def __init__(self) -> None:
        #: component_id -> LWW register of (name, status)
        self.components: dict[str, LWW] = {}
        self.incidents: dict[str, IncidentState] = {}

    def merge_in(self, other: PageState, effective: PageState | None = None) -> bool:
        changed = False
        comps = self.components
        for cid, reg in other.components.items():
            cur = comps.get(cid)
            # Inline the common case of lww_beats: this loop is the store's hot path.
            if cur is None or reg.hlc > cur.hlc or (reg.hlc == cur.hlc and lww_beats(reg, cur)):
                comps[cid] = reg
                changed = True
                if effective is not None:
                    effective.components[cid] = reg
        for iid, inc in other.incidents.items():
            mine = self.incidents.get(iid)
            if mine is None:
                mine = self.incidents[iid] = IncidentState()
            eff = IncidentState() if effective is not None else None
            if mine.merge_in(inc, eff):
                changed = True
                if effective is not None and eff is not None:
                    effective.incidents[iid] = eff
            elif mine.is_empty():
                del self.incidents[iid]
        return changed

    def copy(self) -> PageState:
        out = PageState()
        out.components = dict(self.components)
        out.incidents = {k: v.copy() for k, v in self.incidents.items()}
        return out

    def is_empty(self) -> bool:
        return not self.components and not self.incidents

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PageState)
            and self.components == other.components
            and self.incidents == other.incidents
        )

    __hash__ = None  # type: ignore[assignment]


class StoreState:
    """All pages plus the replicated set of recently seen event ids (64-bit hashes, expiry in s)."""

    __slots__ = ("pages", "seen")

    def __init__(self) -> None:
        self.pages: dict[str, PageState] = {}
        self.seen = ExpiringSet()

    def merge_in(
        self, other: StoreState, *, now_s: int | None = None, effective: StoreState | None = None
    ) -> bool:
        """Join ``other`` into this state; record what changed into ``effective`` if given."""
        changed = False
        pages = self.pages
        for pid, page in other.pages.items():
            mine = pages.get(pid)
            if mine is None:
                mine = pages[pid] = PageState()
            eff = PageState() if effective is not None else None
            if mine.merge_in(page, eff):
                changed = True
                if effective is not None and eff is not None:
                    effective.pages[pid] = eff
            elif mine.is_empty():
                del pages[pid]
        if other.seen.items and self.seen.merge_in(
            other.seen, now_s, effective.seen if effective is not None else None
        ):
            changed = True
        return changed

    def copy(self) -> StoreState:
        out = StoreState()
        out.pages = {k: v.copy() for k, v in self.pages.items()}
        out.seen = ExpiringSet(self.seen.items)
        return out

    def is_empty(self) -> bool:
        return not self.pages and not self.seen.items

    def live_keys(self) -> int:
        return sum(len(p.components) for p in self.pages.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreState) and self.pages == other.pages and self.seen == other.seen

    __hash__ = None  # type: ignore[assignment]


def render_page(page_id: str, page: PageState | None) -> dict[str, Any]:
    """The JSON-able view of one page that ``GET /v1/pages/{id}/status`` serves."""
    components: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    maintenances: list[dict[str, Any]] = []
    if page is not None:
        for cid in sorted(page.components):
            reg = page.components[cid]
            name, status = reg.value
            components.append(
                {"id": cid, "name": name, "status": status, "hlc": str(reg.hlc), "node": reg.node}
            )
        for iid in sorted(page.incidents):
            inc = page.incidents[iid]
            status = inc.value("status")
            if iid.startswith(MAINTENANCE_KEY):
                if status is not None and status not in MAINTENANCE_CLOSED:
                    maintenances.append(
                        {
                            "id": iid.removeprefix(MAINTENANCE_KEY),
                            "title": inc.value("title"),
                            "status": status,
                            "starts_at": inc.value("starts_at"),
                            "ends_at": inc.value("ends_at"),
                            "components": list(inc.value("components", ())),
                            "timeline": render_timeline(inc.timeline.entries),
                        }
                    )
                continue
            if status is None or status in CLOSED_STATUSES:
                continue
            incidents.append(
                {
                    "id": iid,
                    "title": inc.value("title"),
                    "status": status,
                    "impact": inc.value("impact"),
                    "components": list(inc.value("components", ())),
                    "timeline": render_timeline(inc.timeline.entries),
                }
            )
    view: dict[str, Any] = {"page_id": page_id, "components": components, "open_incidents": incidents}
    if maintenances:
        view["maintenances"] = maintenances
    return view


def render_timeline(entries: dict[Hashable, Any]) -> list[dict[str, Any]]:
    rows: list[TimelineEntry] = sorted(entries, key=lambda e: (e[3], e[0]))  # type: ignore[arg-type, index]
    return [{"event_id": e, "status": s, "message": m, "at": iso_from_ms(at)} for e, s, m, at in rows]
