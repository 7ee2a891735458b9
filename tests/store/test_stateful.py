"""A hypothesis state machine: replicas write, remove, lose/duplicate/reorder/delay deltas,
restart from their files and have their clocks stepped back; once they have exchanged everything
they must be equal to each other and to a sequential reference model."""

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


class Model:
    """The sequential reference: every LWW key holds the greatest write ever made, and the
    timeline holds every entry added and never removed."""

    def __init__(self) -> None:
        self.components: dict[str, LWW] = {}
        self.fields: dict[str, LWW] = {}
        self.timeline: dict[str, dict[str, Any]] = {}

    def write(self, table: dict[str, LWW], key: str, reg: LWW) -> None:
        table[key] = lww_merge(table.get(key), reg)  # type: ignore[assignment]

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
        self.applied: list[str] = []
        self.wrote: dict[str, list[str]] = {r: [] for r in REPLICAS}

    def _open(self, name: str) -> StatusStore:
        store = StatusStore.open(
            self.root / name, name, clock=self.clocks[name], fsync=False, max_clock_offset_ms=DAY_MS
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
            component_event(event_id=eid, status=status, seconds=dt, component=cid, name=cid.upper())
        )
        assert not result.duplicate
        self.applied.append(eid)
        self.wrote[r].append(eid)
        self.model.write(self.model.components, cid, LWW(result.hlc, r, (cid.upper(), status)))

    @rule(r=st.sampled_from(REPLICAS), status=st.sampled_from(INCIDENT_STATUSES), dt=st.integers(-3, 3),
          title=st.sampled_from(["DB down", "Slow API"]))  # fmt: skip
    def write_incident(self, r: str, status: str, dt: int, title: str) -> None:
        eid = self._event_id()
        event = incident_event(
            event_id=eid, status=status, seconds=dt, incident_id="inc-1", title=title, message=f"m{eid}"
        )
        result = self.stores[r].apply_event(event)
        self.applied.append(eid)
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

    @invariant()
    def each_replica_has_seen_what_it_applied_itself(self) -> None:
        for r in REPLICAS:
            assert all(self.stores[r].seen("acme", eid) for eid in self.wrote[r])

    @rule()
    def exchange_everything(self) -> None:
        self._converge()

    def _converge(self) -> None:
        """Exchange everything in flight and more; then every replica equals the model."""
        for _ in range(20):
            for r in REPLICAS:
                self.send(r)
            if not self.inflight:
                break
            while self.inflight:
                self._deliver(self.inflight.pop(0))
        assert not self.inflight, "replicas did not quiesce"
        states = [self.stores[r].export_state() for r in REPLICAS]
        assert all(s == states[0] for s in states[1:])
        expected = self.model.page_status()
        for r in REPLICAS:
            assert self.stores[r].page_status("acme") == expected, r
            for eid in self.applied:
                assert self.stores[r].seen("acme", eid)

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
