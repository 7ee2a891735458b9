"""Compaction: what keeps the store's size bounded while it runs for months.

Three things would otherwise grow for ever, and each has its own rule:

* **Closed incidents and maintenances.** Once one has been closed for the incident retention
  (measured from the newest thing it holds), its fields and timeline are dropped and it keeps
  only a tombstone: the stamp at or below which nothing of it counts any more (see
  :class:`~notifyd.store.state.IncidentState`). The tombstone is a delta like any other, so
  it replicates; a peer that still holds the incident open, because it never saw the close,
  drops it on merge instead of bringing it back.
* **Tombstones.** A tombstone that is all that is left of an incident is itself dropped once
  it is ``tombstone_retention`` old (past the incident retention), with its timeline's causal
  context. This assumes what every tombstone GC assumes: by then every replica has heard of it.
  A replica that was cut off for longer than both retentions can no longer be told that an
  incident it holds open was closed; remove it with ``remove_member`` and let it rejoin empty.
  An event older than a dropped tombstone (over three weeks late) counts as new.
* **The seen-set.** Event ids expire with the event-id TTL.

Every rule is a function of the state and the time, so every replica compacts the same way,
and the result of a compaction joins with other replicas' states like any other write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from notifyd.store.hlc import COUNTER_MASK, pack, physical_ms
from notifyd.store.state import IncidentState, PageState, StoreState
from notifyd.store.types import CausalContext, Dot

#: A closed incident is compacted this long after the newest thing it holds (7 days).
DEFAULT_INCIDENT_RETENTION_S = 7 * 86_400
#: Its tombstone is kept this long after that (14 days), so a peer away for less converges.
DEFAULT_TOMBSTONE_RETENTION_S = 14 * 86_400


@dataclass
class CompactionPlan:
    #: Tombstones for the incidents to compact, merged like any other delta (and replicated).
    delta: StoreState = field(default_factory=StoreState)
    #: (page, incident) whose tombstone has expired: dropped here, without a delta.
    expired: list[tuple[str, str]] = field(default_factory=list)
    compacted: int = 0


def plan_compaction(
    state: StoreState, *, now_ms: int, incident_retention_ms: int, tombstone_retention_ms: int
) -> CompactionPlan:
    """What a compaction at ``now_ms`` does to ``state``, without touching it."""
    plan = CompactionPlan()
    retention_ms = incident_retention_ms + tombstone_retention_ms
    for pid, page in state.pages.items():
        dpage: PageState | None = None
        for iid, inc in page.incidents.items():
            if inc.fields or inc.timeline.entries:
                newest = inc.newest_ms()
                if not inc.is_closed(iid) or newest + incident_retention_ms > now_ms:
                    continue
                # Even one closed so long ago that its tombstone expires at once gets one: a peer
                # that reopened it meanwhile must still see its timeline entries removed.
                if dpage is None:
                    dpage = plan.delta.pages[pid] = PageState()
                dpage.incidents[iid] = tombstone_delta(inc, newest)
                plan.compacted += 1
            elif not inc.tomb or physical_ms(inc.tomb) + retention_ms <= now_ms:
                plan.expired.append((pid, iid))
    return plan


def tombstone_delta(inc: IncidentState, newest_ms: int) -> IncidentState:
    """The delta that compacts ``inc``: a tombstone over its newest millisecond, and the
    observed-remove of every timeline entry (a concurrent add elsewhere still wins)."""
    delta = IncidentState()
    delta.tomb = max(inc.tomb, pack(newest_ms, COUNTER_MASK))
    dots: set[Dot] = set()
    for entry_dots in inc.timeline.entries.values():
        dots |= entry_dots
    delta.timeline.ctx = CausalContext(cloud=dots)
    return delta


def drop_expired(state: StoreState, expired: list[tuple[str, str]]) -> None:
    for pid, iid in expired:
        page = state.pages.get(pid)
        if page is None:
            continue
        page.incidents.pop(iid, None)
        if page.is_empty():
            del state.pages[pid]
