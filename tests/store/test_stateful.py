"""A hypothesis state machine: replicas write, remove, lose/duplicate/reorder/delay deltas,
restart from their files, have their clocks stepped back, and compact while days pass (closed
incidents become tombstones, tombstones and event ids expire); once they have compacted and
exchanged everything they must be equal to each other and to a sequential reference model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from notifyd.store import StatusStore
from notifyd.store.state import CLOSED_STATUSES
from notifyd.store.types import LWW, lww_merge
from tests.support.events import component_event, incident_event

from ._support import FakeClock

REPLICAS = ("r0", "r1", "r2", "r3")
COMPONENTS = ("api", "db", "cdn")
STATUSES = ("operational", "degraded_performance", "major_outage")
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
DAY_MS = 86_400_000
DAY = 86_400
#: Retentions half an hour off whole days: days pass whole, and the replicas' clocks differ by
#: seconds, so every replica reaches a retention at the same day boundary.
TTL = 7 * DAY + 1800
RETENTION = {"incident_retention_s": TTL, "tombstone_retention_s": 14 * DAY, "event_id_ttl_s": TTL}


class Model:
    """The sequential reference: every LWW key holds the greatest write ever made, unless a
    compaction's tombstone covers it, and the timeline holds every entry added and never removed
    (by hand, or by a compaction that observed it)."""

    def __init__(self) -> None:
        self.components: dict[str, LWW] = {}
        self.fields: dict[str, LWW] = {}
        self.timeline: dict[str, dict[str, Any]] = {}
        self.tomb = 0

    def write(self, table: dict[str, LWW], key: str, reg: LWW) -> None:
        if table is self.fields and reg.hlc <= self.tomb:
            return
        table[key] = lww_merge(table.get(key), reg)  # type: ignore[assignment]

    def bury(self, tomb: int) -> None:
        self.tomb = max(self.tomb, tomb)
        self.fields = {k: reg for k, reg in self.fields.items() if reg.hlc > self.tomb}

    def page_status(self) -> dict[str, Any]:
        comps = [
            {"id": cid, "name": reg.value[0], "status": reg.value[1], "hlc": str(reg.hlc), "node": reg.node}
            for cid, reg in sorted(self.components.items())
        ]
        incidents = []
        status = self.fields.get("status")
        if status is not None and status.value not in CLOSED_STATUSES:
            incidents.append(
                {
                    "id": "inc-1",
                    "title": self.fields["title"].value,
                    "status": status.value,
                    "impact": self.fields["impact"].value,
                    "components": list(self.fields["components"].value),
                    "timeline": sorted(self.timeline.values(), key=lambda t: (t["at"], t["event_id"])),
                }
            )
        return {"page_id": "acme", "components": comps, "open_incidents": incidents}


class ReplicaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="store-machine-"))
        self.clocks = {r: FakeClock() for r in REPLICAS}
        self.stores = {r: self._open(r) for r in REPLICAS}
        self.inflight: list[tuple[str, str, bytes]] = []
        self.model = Model()
        self.next_id = 0
        #: event id -> seconds elapsed when it was applied (its seen-set entry expires TTL later).
        self.applied: dict[str, int] = {}
        self.wrote: dict[str, list[str]] = {r: [] for r in REPLICAS}
        #: Whole days passed: events occur this long after T0, as the clocks have moved on.
        self.elapsed = 0

    def _open(self, name: str) -> StatusStore:
        store = StatusStore.open(
            self.root / name,
            name,
            clock=self.clocks[name],
            fsync=False,
            max_clock_offset_ms=DAY_MS,
            **RETENTION,  # type: ignore[arg-type]
        )
        for peer in REPLICAS:
            store.add_peer(peer)
        return store

    def _event_id(self) -> str:
        self.next_id += 1
        return f"ev-{self.next_id}"

    # -- writes ----------------------------------------------------------------------------------------

    @rule(r=st.sampled_from(REPLICAS), cid=st.sampled_from(COMPONENTS), status=st.sampled_from(STATUSES),
          dt=st.integers(-3, 3))  # fmt: skip
    def write_component(self, r: str, cid: str, status: str, dt: int) -> None:
        eid = self._event_id()
        result = self.stores[r].apply_event(
            component_event(
                event_id=eid, status=status, seconds=self.elapsed + dt, component=cid, name=cid.upper()
            )
        )
        assert not result.duplicate
        self.applied[eid] = self.elapsed
        self.wrote[r].append(eid)
        self.model.write(self.model.components, cid, LWW(result.hlc, r, (cid.upper(), status)))

    @rule(r=st.sampled_from(REPLICAS), status=st.sampled_from(INCIDENT_STATUSES), dt=st.integers(-3, 3),
          title=st.sampled_from(["DB down", "Slow API"]))  # fmt: skip
    def write_incident(self, r: str, status: str, dt: int, title: str) -> None:
        eid = self._event_id()
        event = incident_event(
            event_id=eid,
            status=status,
            seconds=self.elapsed + dt,
            incident_id="inc-1",
            title=title,
            message=f"m{eid}",
        )
        result = self.stores[r].apply_event(event)
        self.applied[eid] = self.elapsed
        self.wrote[r].append(eid)
        inc = event["incident"]
        for name in ("title", "status", "impact"):
            self.model.write(self.model.fields, name, LWW(result.hlc, r, inc[name]))
        self.model.write(self.model.fields, "components", LWW(result.hlc, r, tuple(inc["components"])))
        self.model.timeline[eid] = {
            "event_id": eid,
            "status": status,
            "message": f"m{eid}",
            "at": _iso(event["occurred_at"]),
        }

    @rule(r=st.sampled_from(REPLICAS), pick=st.integers(0, 100))
    def remove_timeline_entry(self, r: str, pick: int) -> None:
        visible = [
            t["event_id"]
            for inc in self.stores[r].page_status("acme")["open_incidents"]
            for t in inc["timeline"]
            if t["event_id"] in self.model.timeline
        ]
        if visible:
            eid = visible[pick % len(visible)]
            assert self.stores[r].remove_timeline_entry("acme", "inc-1", eid)
            del self.model.timeline[eid]

    # -- network: delay is simply not delivering yet ---------------------------------------------------------

    @rule(r=st.sampled_from(REPLICAS))
    def send(self, r: str) -> None:
        for peer in REPLICAS:
            if peer != r and (payload := self.stores[r].sync_payload_for(peer)) is not None:
                self.inflight.append((r, peer, payload))

    @precondition(lambda self: self.inflight)
    @rule(pick=st.integers(0, 100))
    def deliver_out_of_order(self, pick: int) -> None:
        self._deliver(self.inflight.pop(pick % len(self.inflight)))

    @precondition(lambda self: self.inflight)
    @rule(pick=st.integers(0, 100))
    def drop(self, pick: int) -> None:
        self.inflight.pop(pick % len(self.inflight))

    @precondition(lambda self: self.inflight)
    @rule(pick=st.integers(0, 100))
    def duplicate(self, pick: int) -> None:
        self.inflight.append(self.inflight[pick % len(self.inflight)])

    def _deliver(self, msg: tuple[str, str, bytes]) -> None:
        src, dst, data = msg
        reply = self.stores[dst].handle_message(src, data)
        if reply is not None:
            self.inflight.append((dst, src, reply))

    # -- faults ------------------------------------------------------------------

    @rule(r=st.sampled_from(REPLICAS))
    def restart(self, r: str) -> None:
        before = self.stores[r].export_state()
        self.stores[r].close()
        self.stores[r] = self._open(r)
        assert self.stores[r].export_state() == before

    @rule(days=st.sampled_from([1, 3, 8, 15]))
    def days_pass(self, days: int) -> None:
        """Replicas hear from each other within a day (what tombstone GC assumes), and each
        compacts at the day's start, as ``maybe_compact`` would."""
        self._exchange_all()
        for clock in self.clocks.values():
            clock.advance(days * DAY)
        self.elapsed += days * DAY
        for r in REPLICAS:
            self.compact(r)
        self._exchange_all()

    @rule(r=st.sampled_from(REPLICAS))
    def compact(self, r: str) -> None:
        """Replica ``r`` compacts (and snapshots); the model learns what it buried and observed."""
        held = self._timeline_of(r)
        self.stores[r].snapshot()
        page = self.stores[r].export_state().pages.get("acme")
        inc = page.incidents.get("inc-1") if page is not None else None
        if inc is not None and inc.tomb:
            self.model.bury(inc.tomb)
        for eid in held - self._timeline_of(r):
            self.model.timeline.pop(eid, None)

    def _timeline_of(self, r: str) -> set[str]:
        page = self.stores[r].export_state().pages.get("acme")
        inc = page.incidents.get("inc-1") if page is not None else None
        return set() if inc is None else {e[0] for e in inc.timeline.entries}  # type: ignore[index]

    @rule(r=st.sampled_from(REPLICAS), seconds=st.integers(1, 5))
    def step_clock_back(self, r: str, seconds: int) -> None:
        last = self.stores[r].clock.now()
        self.clocks[r].advance(-seconds)
        assert self.stores[r].clock.now() > last

    @rule(seconds=st.integers(1, 3))
    def time_passes(self, seconds: int) -> None:
        for clock in self.clocks.values():
            clock.advance(seconds)

    # -- convergence -------------------------------------------------------------

    def _live(self, eid: str) -> bool:
        """Applied within the event-id TTL (a day of margin: the clocks differ by seconds)."""
        return self.elapsed - self.applied[eid] < TTL - DAY

    def _expired(self, eid: str) -> bool:
        return self.elapsed - self.applied[eid] > TTL + DAY

    @invariant()
    def each_replica_has_seen_what_it_applied_itself(self) -> None:
        for r in REPLICAS:
            assert all(self.stores[r].seen("acme", eid) for eid in self.wrote[r] if self._live(eid))
            assert not any(self.stores[r].seen("acme", eid) for eid in self.wrote[r] if self._expired(eid))

    @rule()
    def exchange_everything(self) -> None:
        self._converge()

    def _converge(self) -> None:
        """Exchange everything in flight and more; then every replica equals the model."""
        self._exchange_all()
        states = [self.stores[r].export_state() for r in REPLICAS]
        assert all(s == states[0] for s in states[1:])
        expected = self.model.page_status()
        for r in REPLICAS:
            assert self.stores[r].page_status("acme") == expected, r
            for eid in self.applied:
                if self._live(eid):
                    assert self.stores[r].seen("acme", eid)
            # Bounded: what the seen-set holds is what the TTL lets it hold.
            assert self.stores[r].stats["seen_ids"] <= sum(1 for e in self.applied if not self._expired(e))

    def _exchange_all(self) -> None:
        """Rounds until no replica has anything left to send (delivering drains the network
        every round, so an empty network alone would not show that they quiesced)."""
        for _ in range(20):
            for r in REPLICAS:
                self.send(r)
            if not self.inflight:
                return
            while self.inflight:
                self._deliver(self.inflight.pop(0))
        raise AssertionError("replicas did not quiesce")

    def teardown(self) -> None:
        try:
            # Whatever steps were drawn, every run ends with the convergence check.
            self._converge()
        finally:
            self._close()

    def _close(self) -> None:
        for store in self.stores.values():
            store.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _iso(value: str) -> str:
    return value.replace("Z", ".000Z") if "." not in value else value


ReplicaMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_replicas_converge_to_the_sequential_model = pytest.mark.slow(ReplicaMachine.TestCase)
