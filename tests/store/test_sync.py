"""Delta-state anti-entropy between stores, driven by hand."""

from __future__ import annotations

import random

import pytest

from notifyd.store import ClockSkewError, LossyNetwork, Replicator, StatusStore, SyncProtocolError
from notifyd.store.sync import KIND_DELTA, KIND_FULL, unpack_message
from tests.support.events import component_event

from ._support import FakeClock

COMPONENTS = [("api", "API"), ("db", "Database"), ("cdn", "CDN"), ("web", "Website"), ("auth", "Login")]
STATUSES = ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]


def _exchange(a: StatusStore, b: StatusStore) -> None:
    """One round both ways, acks included."""
    for src, dst in ((a, b), (b, a)):
        payload = src.sync_payload_for(dst.node_id)
        if payload is not None:
            src.receive_ack(dst.node_id, dst.receive_sync(src.node_id, payload))


def _stores(clock: FakeClock, *names: str) -> list[StatusStore]:
    stores = [StatusStore.memory(n, clock=clock) for n in names]
    for s in stores:
        for other in names:
            s.add_peer(other)
    return stores


def test_two_stores_that_exchange_deltas_converge() -> None:
    clock = FakeClock()
    a, b = _stores(clock, "a", "b")
    a.apply_event(component_event(event_id="e1", status="major_outage", seconds=1))
    b.apply_event(component_event(event_id="e2", status="operational", seconds=2, component="db"))
    _exchange(a, b)
    assert a.export_state() == b.export_state()
    assert b.seen("acme", "e1") and a.seen("acme", "e2")


def test_a_delta_is_never_echoed_back_to_the_peer_it_came_from() -> None:
    clock = FakeClock()
    a, b, c = _stores(clock, "a", "b", "c")
    for x, y in ((a, b), (b, c), (a, c)):
        _exchange(x, y)
    a.apply_event(component_event(event_id="e1", status="major_outage", seconds=1))
    payload = a.sync_payload_for("b")
    assert payload is not None and unpack_message(payload)[0] == KIND_DELTA
    a.receive_ack("b", b.receive_sync("a", payload))
    assert b.sync_payload_for("a") is None
    relayed = b.sync_payload_for("c")
    assert relayed is not None and unpack_message(relayed)[0] == KIND_DELTA


def test_a_peer_behind_the_trimmed_delta_buffer_gets_the_full_state() -> None:
    clock = FakeClock()
    a, b = _stores(clock, "a", "b")
    _exchange(a, b)
    a._buffer.max_buffered = 4
    for i in range(10):
        a.apply_event(component_event(event_id=f"e{i}", status=STATUSES[i % 5], seconds=i))
    payload = a.sync_payload_for("b")
    assert payload is not None and unpack_message(payload)[0] == KIND_FULL
    _exchange(a, b)
    assert a.export_state() == b.export_state()
    assert a.stats["delta_buffer"] == 0


def test_a_restarted_replica_resends_its_full_state_and_ignores_old_acks(tmp_path) -> None:
    clock = FakeClock()
    a = StatusStore.open(tmp_path, "a", clock=clock, fsync=False)
    (b,) = _stores(clock, "b")
    a.add_peer("b")
    a.apply_event(component_event(event_id="e1", status="major_outage", seconds=1))
    stale_ack = b.receive_sync("a", a.sync_payload_for("b") or b"")
    a.close()
    a = StatusStore.open(tmp_path, "a", clock=clock, fsync=False)
    a.add_peer("b")
    a.receive_ack("b", stale_ack)
    payload = a.sync_payload_for("b")
    assert payload is not None and unpack_message(payload)[0] == KIND_FULL
    a.close()


def test_a_removed_member_is_refused_and_no_longer_holds_back_gc() -> None:
    clock = FakeClock()
    a, b, c = _stores(clock, "a", "b", "c")
    _exchange(a, b)
    _exchange(a, c)
    a.apply_event(component_event(event_id="e1", status="major_outage", seconds=1))
    _exchange(a, b)
    assert a.stats["delta_buffer"] == 1  # c has not acknowledged it yet
    a.remove_member("c")
    assert a.stats["delta_buffer"] == 0
    c.apply_event(component_event(event_id="e2", status="operational", seconds=2))
    with pytest.raises(SyncProtocolError, match="removed"):
        a.receive_sync("c", c.sync_payload_for("a") or b"")


def test_a_payload_from_a_clock_too_far_ahead_is_refused_without_an_ack() -> None:
    slow, fast = FakeClock(), FakeClock()
    fast.advance(2.0)
    a = StatusStore.memory("a", clock=fast)
    b = StatusStore.memory("b", clock=slow, max_clock_offset_ms=500)
    a.add_peer("b")
    a.apply_event(component_event(event_id="e1", status="major_outage", seconds=1))
    payload = a.sync_payload_for("b")
    assert payload is not None
    with pytest.raises(ClockSkewError):
        b.receive_sync("a", payload)
    assert not b.seen("acme", "e1")
    slow.advance(2.0)  # once b's clock catches up, the resend goes through
    b.receive_sync("a", a.sync_payload_for("b") or b"")
    assert b.seen("acme", "e1")


def test_a_garbled_payload_raises_a_protocol_error() -> None:
    b = StatusStore.memory("b")
    with pytest.raises(SyncProtocolError):
        b.receive_sync("a", b"\xc1not msgpack")


def test_a_typical_component_update_costs_at_most_24_bytes_on_the_wire() -> None:
    clock = FakeClock()
    a, b = _stores(clock, "a", "b")
    _exchange(a, b)
    rng = random.Random(7)
    updates = 100  # one 100 ms sync interval at 1k updates/s
    for i in range(updates):
        cid, name = rng.choice(COMPONENTS)
        page = f"page-{rng.randrange(50):02d}"
        event = component_event(
            event_id=f"evt-{i:06d}",
            status=rng.choice(STATUSES),
            seconds=i / 1000,
            page=page,
            component=cid,
            name=name,
        )
        a.apply_event(event)
    payload = a.sync_payload_for("b")
    assert payload is not None
    ops = sum(len(p.components) for p in a._buffer.pending_for("b")[2].pages.values())  # type: ignore[index, union-attr]
    # Per register op: the component write plus the 8-byte seen-set entry of the event that wrote it.
    assert len(payload) / ops <= 24, (len(payload), ops)


def test_replicators_over_a_lossy_network_converge() -> None:
    clock = FakeClock()
    net = LossyNetwork(drop=0.3, duplicate=0.2, reorder=0.3, seed=3)
    stores = _stores(clock, "a", "b", "c")
    reps = [Replicator(s, net.endpoint(s.node_id), peers=["a", "b", "c"]) for s in stores]
    for i in range(30):
        stores[i % 3].apply_event(
            component_event(event_id=f"e{i}", status=STATUSES[i % 5], seconds=i % 7, component=f"c{i % 4}")
        )
    for _ in range(60):
        for r in reps:
            r.tick()
        net.deliver_all()
    assert stores[0].export_state() == stores[1].export_state() == stores[2].export_state()
    assert all(r.errors == 0 for r in reps)
    assert net.stats.dropped > 0 and net.stats.duplicated > 0
