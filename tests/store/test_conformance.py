"""One suite, run against the in-memory store and the persisted store reopened from its files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notifyd.store import ApplyResult, InvalidEventError, StatusStore
from tests.support.events import T0, component_event, incident_event

from ._support import FakeClock


class Harness:
    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.dir = tmp_path / "store"
        self.clock = FakeClock()
        self.store = self._make()

    def _make(self) -> StatusStore:
        if self.kind == "memory":
            return StatusStore.memory("region-a", clock=self.clock)
        return StatusStore.open(self.dir, "region-a", clock=self.clock, fsync=False)

    def reopened(self) -> StatusStore:
        """The store as a reader after a restart sees it (the same object when nothing persists)."""
        if self.kind == "persisted":
            self.store.close()
            self.store = self._make()
        return self.store


@pytest.fixture(params=["memory", "persisted"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(request.param, tmp_path)
    yield h
    h.store.close()


def _status(store: StatusStore, component: str = "api") -> str:
    comps = {c["id"]: c for c in store.page_status("acme")["components"]}
    return str(comps[component]["status"])


class TestConcreteStores:
    def test_a_component_event_sets_the_component_status(self, harness: Harness) -> None:
        result = harness.store.apply_event(component_event(event_id="e1", status="major_outage", seconds=1))
        assert result == ApplyResult(duplicate=False, stale=False, changed=True, hlc=result.hlc)
        store = harness.reopened()
        [comp] = store.page_status("acme")["components"]
        assert comp["id"] == "api" and comp["name"] == "API" and comp["status"] == "major_outage"
        assert comp["node"] == "region-a" and int(comp["hlc"]) == result.hlc

    def test_late_event_older_than_state_changes_nothing(self, harness: Harness) -> None:
        harness.store.apply_event(component_event(event_id="e-new", status="operational", seconds=10))
        late = harness.store.apply_event(
            component_event(event_id="e-old", status="degraded_performance", seconds=5)
        )
        assert late.stale and not late.changed and not late.duplicate
        assert _status(harness.reopened()) == "operational"

    def test_subscriber_never_sees_degraded_after_operational_when_the_old_event_arrives_last(
        self, harness: Harness
    ) -> None:
        results = [
            harness.store.apply_event(component_event(event_id="e2", status="operational", seconds=2)),
            harness.store.apply_event(
                component_event(event_id="e1", status="degraded_performance", seconds=1)
            ),
        ]
        notified = [r for r in results if r.changed and not r.stale]
        assert len(notified) == 1
        assert _status(harness.reopened()) == "operational"

    def test_second_event_with_same_event_id_is_a_duplicate(self, harness: Harness) -> None:
        harness.store.apply_event(component_event(event_id="e1", status="major_outage", seconds=0))
        store = harness.reopened()
        assert store.seen("acme", "e1")
        again = store.apply_event(component_event(event_id="e1", status="operational", seconds=50))
        assert again.duplicate and not again.changed
        assert _status(store) == "major_outage"

    def test_event_ids_are_forgotten_after_their_ttl(self, harness: Harness) -> None:
        harness.store.apply_event(component_event(event_id="e1", status="major_outage", seconds=0))
        harness.clock.advance(604_800 + 1)
        store = harness.reopened()
        assert not store.seen("acme", "e1")
        store.snapshot()
        assert store.stats["seen_ids"] == 0

    def test_events_in_the_same_millisecond_apply_in_arrival_order(self, harness: Harness) -> None:
        harness.store.apply_event(
            incident_event(event_id="i1", status="investigating", kind="incident_created", seconds=0)
        )
        second = harness.store.apply_event(incident_event(event_id="i2", status="identified", seconds=0))
        assert second.changed and not second.stale
        [inc] = harness.reopened().page_status("acme")["open_incidents"]
        assert inc["status"] == "identified"
        assert [t["event_id"] for t in inc["timeline"]] == ["i1", "i2"]

    def test_incident_timeline_records_a_late_update_without_changing_the_status(
        self, harness: Harness
    ) -> None:
        harness.store.apply_event(
            incident_event(event_id="i1", status="investigating", seconds=0, kind="incident_created")
        )
        harness.store.apply_event(incident_event(event_id="i3", status="monitoring", seconds=20))
        late = harness.store.apply_event(
            incident_event(event_id="i2", status="identified", seconds=10, message="found it")
        )
        assert late.stale and not late.changed
        [inc] = harness.reopened().page_status("acme")["open_incidents"]
        assert inc["status"] == "monitoring"
        assert [t["event_id"] for t in inc["timeline"]] == ["i1", "i2", "i3"]
        assert inc["timeline"][1] == {
            "event_id": "i2",
            "status": "identified",
            "message": "found it",
            "at": "2026-11-28T13:00:10.000Z",
        }

    def test_resolved_incidents_are_not_open(self, harness: Harness) -> None:
        harness.store.apply_event(
            incident_event(event_id="i1", status="investigating", kind="incident_created", seconds=0)
        )
        harness.store.apply_event(incident_event(event_id="i2", status="resolved", seconds=5))
        assert harness.reopened().page_status("acme")["open_incidents"] == []

    def test_incident_events_do_not_touch_component_registers(self, harness: Harness) -> None:
        harness.store.apply_event(
            incident_event(event_id="i1", status="investigating", kind="incident_created", seconds=0)
        )
        status = harness.reopened().page_status("acme")
        assert status["components"] == []
        assert status["open_incidents"][0]["components"] == ["api", "db"]

    def test_an_event_from_the_future_is_clamped_to_the_allowed_offset(self, harness: Harness) -> None:
        far = harness.clock() - T0.timestamp() + 3600  # an hour ahead of the store's clock
        harness.store.apply_event(component_event(event_id="e1", status="major_outage", seconds=far))
        [comp] = harness.reopened().page_status("acme")["components"]
        assert int(comp["hlc"]) >> 16 == int(harness.clock() * 1000) + 500

    def test_a_removed_timeline_entry_stays_removed(self, harness: Harness) -> None:
        harness.store.apply_event(
            incident_event(event_id="i1", status="investigating", kind="incident_created", seconds=0)
        )
        harness.store.apply_event(incident_event(event_id="i2", status="identified", seconds=1))
        assert harness.store.remove_timeline_entry("acme", "inc-1", "i1")
        [inc] = harness.reopened().page_status("acme")["open_incidents"]
        assert [t["event_id"] for t in inc["timeline"]] == ["i2"]

    def test_an_unknown_page_has_an_empty_status(self, harness: Harness) -> None:
        assert harness.store.page_status("nope") == {
            "page_id": "nope",
            "components": [],
            "open_incidents": [],
        }

    def test_an_event_without_a_page_id_is_refused_with_the_field_named(self, harness: Harness) -> None:
        event = component_event(event_id="e1", status="operational", seconds=0)
        del event["page_id"]
        with pytest.raises(InvalidEventError, match="page_id"):
            harness.store.apply_event(event)

    def test_a_snapshot_then_more_events_reload_to_the_same_state(self, harness: Harness) -> None:
        harness.store.apply_event(component_event(event_id="e1", status="major_outage", seconds=1))
        harness.store.snapshot()
        harness.store.apply_event(
            component_event(event_id="e2", status="operational", seconds=2, component="db", name="DB")
        )
        before = harness.store.export_state()
        assert harness.reopened().export_state() == before
