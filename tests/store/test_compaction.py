"""Compaction keeps the store bounded: closed incidents become tombstones that peers honour,
tombstones and seen event ids expire, and replicas still converge."""

from __future__ import annotations

from pathlib import Path

from notifyd.store import StatusStore
from tests.support.events import component_event, incident_event

from ._support import FakeClock

DAY = 86_400
RETENTION = {"incident_retention_s": 7 * DAY, "tombstone_retention_s": 14 * DAY}


def _pair(clock: FakeClock, root: Path | None = None) -> tuple[StatusStore, StatusStore]:
    if root is None:
        a = StatusStore.memory("a", clock=clock, **RETENTION)
        b = StatusStore.memory("b", clock=clock, **RETENTION)
    else:
        a = StatusStore.open(root / "a", "a", clock=clock, fsync=False, **RETENTION)
        b = StatusStore.open(root / "b", "b", clock=clock, fsync=False, **RETENTION)
    for s in (a, b):
        s.add_peer("a")
        s.add_peer("b")
    return a, b


def _exchange(*stores: StatusStore) -> None:
    """Rounds until nobody has anything left to send."""
    for _ in range(10):
        moved = False
        for src in stores:
            for dst in stores:
                if src is dst:
                    continue
                payload = src.sync_payload_for(dst.node_id)
                if payload is not None:
                    moved = True
                    src.receive_ack(dst.node_id, dst.receive_sync(src.node_id, payload))
        if not moved:
            return
    raise AssertionError("stores did not quiesce")


def _incidents(store: StatusStore) -> int:
    return store.stats["incidents"]


def test_a_resolved_incident_past_its_retention_leaves_only_a_tombstone() -> None:
    clock = FakeClock()
    store = StatusStore.memory("a", clock=clock, **RETENTION)
    store.apply_event(incident_event(event_id="e1", status="investigating", seconds=1))
    store.apply_event(incident_event(event_id="e2", status="resolved", seconds=2))
    clock.advance(6 * DAY)
    assert store.compact()["incidents"] == 0, "still within its retention"
    clock.advance(2 * DAY)
    assert store.compact()["incidents"] == 1
    inc = store.export_state().pages["acme"].incidents["inc-1"]
    assert not inc.fields and not inc.timeline.entries and inc.tomb
    assert store.stats["tombstones"] == 1
    assert store.page_status("acme")["open_incidents"] == []


def test_an_open_incident_is_never_compacted_however_old() -> None:
    clock = FakeClock()
    store = StatusStore.memory("a", clock=clock, **RETENTION)
    store.apply_event(incident_event(event_id="e1", status="identified", seconds=1))
    clock.advance(60 * DAY)
    assert store.compact()["incidents"] == 0
    (shown,) = store.page_status("acme")["open_incidents"]
    assert shown["status"] == "identified" and len(shown["timeline"]) == 1


def test_a_completed_maintenance_is_compacted_like_a_resolved_incident() -> None:
    clock = FakeClock()
    store = StatusStore.memory("a", clock=clock, **RETENTION)
    window = {"id": "m1", "title": "DB upgrade", "starts_at": "2026-11-28T14:00:00Z", "components": ["db"]}
    for i, kind in enumerate(("maintenance_scheduled", "maintenance_completed")):
        store.apply_event(
            {
                "event_id": f"m{i}",
                "type": kind,
                "page_id": "acme",
                "occurred_at": f"2026-11-28T13:00:0{i}Z",
                "maintenance": window,
            }  # fmt: skip
        )
    clock.advance(8 * DAY)
    assert store.compact()["incidents"] == 1


def test_a_peer_offline_longer_than_the_retention_does_not_bring_a_compacted_incident_back(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    a, b = _pair(clock, tmp_path)
    a.apply_event(incident_event(event_id="e1", status="investigating", seconds=1))
    _exchange(a, b)
    # b goes offline knowing the incident as open; meanwhile it is resolved on a.
    b.apply_event(incident_event(event_id="e2", status="identified", seconds=2))
    b.close()
    a.apply_event(incident_event(event_id="e3", status="resolved", seconds=3))
    clock.advance(10 * DAY)
    assert a.compact()["incidents"] == 1

    b = StatusStore.open(tmp_path / "b", "b", clock=clock, fsync=False, **RETENTION)
    b.add_peer("a")
    assert b.page_status("acme")["open_incidents"][0]["status"] == "identified"
    # b speaks first: its open version reaches a, which holds only the tombstone.
    stale = b.sync_payload_for("a")
    assert stale is not None
    b.receive_ack("a", a.receive_sync("b", stale))
    assert a.page_status("acme")["open_incidents"] == [], "the tombstone let a stale open version in"
    _exchange(a, b)
    assert a.page_status("acme")["open_incidents"] == []
    assert b.page_status("acme")["open_incidents"] == []
    # b's own update, which a never saw, survives the sync only as a timeline entry of a closed
    # incident; the next compaction on each side drops it, and then both are the same.
    a.compact()
    b.compact()
    _exchange(a, b)
    assert a.export_state() == b.export_state()
    assert _incidents(a) == _incidents(b) == 1
    assert not a.export_state().pages["acme"].incidents["inc-1"].fields
    a.close()
    b.close()


def test_a_peer_that_was_offline_with_the_incident_resolved_compacts_it_on_its_own(tmp_path: Path) -> None:
    clock = FakeClock()
    a, b = _pair(clock, tmp_path)
    a.apply_event(incident_event(event_id="e1", status="resolved", seconds=1))
    _exchange(a, b)
    b.close()
    clock.advance(10 * DAY)
    a.compact()
    b = StatusStore.open(tmp_path / "b", "b", clock=clock, fsync=False, **RETENTION)
    b.add_peer("a")
    b.compact()
    _exchange(a, b)
    assert a.export_state() == b.export_state()
    a.close()
    b.close()


def test_a_tombstone_is_dropped_after_the_tombstone_retention() -> None:
    clock = FakeClock()
    a, b = _pair(clock)
    a.apply_event(incident_event(event_id="e1", status="resolved", seconds=1))
    a.apply_event(component_event(event_id="e2", status="operational", seconds=1))
    _exchange(a, b)
    clock.advance(8 * DAY)
    a.compact()
    _exchange(a, b)
    assert b.stats["tombstones"] == 1
    clock.advance(12 * DAY)
    assert a.compact()["tombstones"] == 0, "kept for 14 days after the incident retention"
    clock.advance(2 * DAY)
    assert a.compact()["tombstones"] == 1
    assert b.compact()["tombstones"] == 1
    _exchange(a, b)
    assert a.stats["incidents"] == b.stats["incidents"] == 0
    assert a.export_state() == b.export_state()
    assert a.page_status("acme")["components"], "the page itself stays"


def test_replicas_quiesce_after_a_tombstone_over_a_timeline_with_a_removed_entry() -> None:
    """The tombstone's observed-remove context has a gap (e1's entry was removed by hand), so
    its dots stay in the context's cloud. Peers that already cover them must find nothing new:
    they used to relay it to each other for ever, and after the tombstone expired it came back
    as an incident holding only a context, on some replicas and not others."""
    clock = FakeClock()
    stores = [StatusStore.memory(n, clock=clock, **RETENTION) for n in ("a", "b", "c")]
    a = stores[0]
    for s in stores:
        for peer in ("a", "b", "c"):
            s.add_peer(peer)
    a.apply_event(incident_event(event_id="e1", status="investigating", seconds=1))
    a.apply_event(incident_event(event_id="e2", status="identified", seconds=2))
    assert a.remove_timeline_entry("acme", "inc-1", "e1")
    a.apply_event(incident_event(event_id="e3", status="resolved", seconds=3))
    _exchange(*stores)
    clock.advance(8 * DAY)
    assert a.compact()["incidents"] == 1
    _exchange(*stores)
    assert all(s.export_state().pages == a.export_state().pages for s in stores)
    clock.advance(14 * DAY)
    for s in stores:
        assert s.compact()["tombstones"] == 1
    _exchange(*stores)
    assert all(s.stats["incidents"] == 0 for s in stores)
    assert all(s.export_state() == a.export_state() for s in stores)


def test_an_event_older_than_a_tombstone_is_stale_and_a_newer_one_reopens_the_incident() -> None:
    clock = FakeClock()
    store = StatusStore.memory("a", clock=clock, **RETENTION)
    store.apply_event(incident_event(event_id="e1", status="resolved", seconds=10))
    clock.advance(8 * DAY)
    store.compact()
    late = store.apply_event(incident_event(event_id="e2", status="identified", seconds=5))
    assert late.stale and not late.changed
    assert store.page_status("acme")["open_incidents"] == []
    reopened = store.apply_event(incident_event(event_id="e3", status="identified", seconds=8 * DAY))
    assert reopened.changed
    (shown,) = store.page_status("acme")["open_incidents"]
    assert shown["status"] == "identified"
    # The timeline kept its causal context: the new entry's dot is not one the old entries had.
    assert [t["event_id"] for t in shown["timeline"]] == ["e2", "e3"]


def test_the_seen_set_holds_only_the_ids_of_the_event_id_ttl() -> None:
    clock = FakeClock()
    store = StatusStore.memory("a", clock=clock, event_id_ttl_s=DAY, **RETENTION)
    for day in range(5):
        for i in range(100):
            store.apply_event(component_event(event_id=f"d{day}-{i}", status="operational", seconds=day))
        clock.advance(DAY // 2)
        store.compact()
        assert store.stats["seen_ids"] <= 200
        if day < 4:
            clock.advance(DAY // 2)
    assert not store.seen("acme", "d0-0") and store.seen("acme", "d4-99")


def test_a_compacted_store_reloads_to_the_same_state(tmp_path: Path) -> None:
    clock = FakeClock()
    store = StatusStore.open(tmp_path, "a", clock=clock, fsync=False, **RETENTION)
    store.apply_event(incident_event(event_id="e1", status="resolved", seconds=1))
    store.apply_event(incident_event(event_id="e2", status="investigating", seconds=2, incident_id="inc-2"))
    clock.advance(8 * DAY)
    store.compact()
    before = store.export_state()
    store.close()
    # From the log (the tombstone was logged as a delta), then from a snapshot.
    store = StatusStore.open(tmp_path, "a", clock=clock, fsync=False, **RETENTION)
    assert store.export_state() == before
    store.snapshot()
    store.close()
    store = StatusStore.open(tmp_path, "a", clock=clock, fsync=False, **RETENTION)
    assert store.export_state() == before
    store.close()


def test_maybe_compact_runs_once_per_interval_and_snapshots_to_disk(tmp_path: Path) -> None:
    clock = FakeClock()
    store = StatusStore.open(tmp_path, "a", clock=clock, fsync=False, compact_every_s=600, **RETENTION)
    store.apply_event(incident_event(event_id="e1", status="resolved", seconds=1))
    assert store.maybe_compact()
    assert not store.maybe_compact(), "not again before the interval"
    clock.advance(8 * DAY)
    assert store.maybe_compact()
    assert store.stats["tombstones"] == 1 and store.stats["log_bytes"] == 0
    assert (tmp_path / "snapshot.bin").exists()
    store.close()
