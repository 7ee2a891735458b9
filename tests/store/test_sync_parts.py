"""A full state too big for one sync message goes in parts, so a new or restarted peer always catches up."""

from __future__ import annotations

import pytest

from notifyd.store import LossyNetwork, Replicator, StatusStore
from notifyd.store.sync import KIND_FULL, KIND_PART, unpack_message
from tests.support.events import component_event, incident_event

from ._support import FakeClock

#: The 64 MiB body limit of POST /v1/sync (notifyd/api/app.py).
SYNC_LIMIT = 64 * 1024 * 1024
MIB = 1024 * 1024


def _fill(store: StatusStore, incidents: int, message_bytes: int, pages: int = 50) -> None:
    filler = "x" * message_bytes
    for i in range(incidents):
        store.apply_event(
            incident_event(
                f"page-{i % pages}",
                event_id=f"e{i}",
                incident_id=f"inc-{i}",
                seconds=i,
                message=f"{filler}{i}",
            )
        )
    for i in range(200):
        store.apply_event(component_event(f"page-{i % pages}", f"c{i}", event_id=f"c{i}", seconds=i))


def _catch_up(a: StatusStore, b: StatusStore) -> list[bytes]:
    sent = []
    while (payload := a.sync_payload_for("b")) is not None:
        sent.append(payload)
        a.receive_ack("b", b.receive_sync("a", payload))
        assert len(sent) < 10_000
    return sent


def test_a_state_that_fits_one_part_still_goes_as_one_full_message() -> None:
    a, b = StatusStore.memory("a"), StatusStore.memory("b")
    a.add_peer("b")
    _fill(a, 20, 100)
    sent = _catch_up(a, b)
    assert [unpack_message(p)[0] for p in sent] == [KIND_FULL]
    assert a.export_state() == b.export_state()


def test_a_state_bigger_than_the_part_size_goes_in_parts_each_under_it() -> None:
    a, b = StatusStore.memory("a", sync_part_bytes=64 * 1024), StatusStore.memory("b")
    a.add_peer("b")
    _fill(a, 400, 2000)
    sent = _catch_up(a, b)
    kinds = {unpack_message(p)[0] for p in sent}
    assert kinds == {KIND_PART}
    assert len(sent) >= 10
    assert max(map(len, sent)) <= 64 * 1024
    assert a.export_state() == b.export_state()
    assert a._buffer.acks["b"] == a._buffer.seq and not a._buffer.transfers


def test_writes_made_while_the_parts_go_out_reach_the_peer_afterwards() -> None:
    a, b = StatusStore.memory("a", sync_part_bytes=32 * 1024), StatusStore.memory("b")
    a.add_peer("b")
    _fill(a, 200, 2000)
    first = a.sync_payload_for("b")
    assert first is not None and unpack_message(first)[0] == KIND_PART
    a.receive_ack("b", b.receive_sync("a", first))
    # A new page, a new incident on a page cut in parts, and a change to a component.
    a.apply_event(component_event("brand-new", "api", event_id="n1", seconds=1))
    a.apply_event(incident_event("page-0", event_id="n2", incident_id="inc-new", seconds=5))
    a.apply_event(component_event("page-0", "c0", "operational", event_id="n3", seconds=999))
    _catch_up(a, b)
    assert a.export_state() == b.export_state()
    assert b.seen("brand-new", "n1") and b.seen("page-0", "n2") and b.seen("page-0", "n3")


def test_lost_and_duplicated_parts_are_sent_again_until_every_part_is_acknowledged() -> None:
    clock = FakeClock()
    net = LossyNetwork(drop=0.3, duplicate=0.2, reorder=0.3, seed=5)
    a = StatusStore.memory("a", clock=clock, sync_part_bytes=16 * 1024)
    b = StatusStore.memory("b", clock=clock)
    _fill(a, 150, 1000)
    reps = [Replicator(s, net.endpoint(s.node_id), peers=["a", "b"]) for s in (a, b)]
    for _ in range(400):
        for r in reps:
            r.tick()
        net.deliver_all()
        if a.export_state() == b.export_state() and not a._buffer.transfers:
            break
    assert a.export_state() == b.export_state()
    assert net.stats.dropped > 0 and all(r.errors == 0 for r in reps)


def test_a_transfer_whose_start_was_trimmed_from_the_delta_buffer_starts_over() -> None:
    a, b = StatusStore.memory("a", sync_part_bytes=32 * 1024), StatusStore.memory("b")
    a.add_peer("b")
    a._buffer.max_buffered = 4
    _fill(a, 200, 2000)
    first = a.sync_payload_for("b")
    assert first is not None
    a.receive_ack("b", b.receive_sync("a", first))
    started_at = a._buffer.transfers["b"].seq
    for i in range(10):
        a.apply_event(component_event("page-1", "c1", event_id=f"t{i}", seconds=2000 + i))
    again = a.sync_payload_for("b")
    assert again is not None and unpack_message(again)[3] > started_at, "a new transfer, from now"
    a.receive_ack("b", b.receive_sync("a", again))
    _catch_up(a, b)
    assert a.export_state() == b.export_state()
    assert a._buffer.acks["b"] is not None and a._buffer.acks["b"] > started_at


def test_sync_payloads_for_gives_distinct_parts_for_a_transport_that_does_not_wait_for_acks() -> None:
    a = StatusStore.memory("a", sync_part_bytes=16 * 1024)
    a.add_peer("b")
    _fill(a, 100, 1000)
    batch = a.sync_payloads_for("b", max_parts=8)
    indexes = [unpack_message(p)[6] for p in batch]
    assert len(indexes) == 8 and len(set(indexes)) == 8
    count = unpack_message(batch[0])[7]
    seen = set(indexes)
    while len(seen) < count:
        seen |= {unpack_message(p)[6] for p in a.sync_payloads_for("b", max_parts=8)}
    # With none acknowledged, the next round starts again where the unacknowledged ones are.
    again = [unpack_message(p)[6] for p in a.sync_payloads_for("b", max_parts=count + 5)]
    assert sorted(again) == list(range(count))


@pytest.mark.slow
def test_a_state_over_the_64_mib_sync_limit_reaches_a_new_peer_in_1_mib_parts() -> None:
    a, b = StatusStore.memory("a"), StatusStore.memory("b")
    a.add_peer("b")
    _fill(a, 34_000, 2000, pages=500)
    sent = _catch_up(a, b)
    assert sum(map(len, sent)) > SYNC_LIMIT, "the state is bigger than one sync body may be"
    assert max(map(len, sent)) <= MIB
    assert a.export_state() == b.export_state()
