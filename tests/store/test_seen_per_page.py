"""The replicated seen-set remembers a page's event id, not a bare id: a region drops the
same page's event that a peer already took, and never another page's event with that id."""

from __future__ import annotations

from notifyd.store import StatusStore
from tests.support.events import component_event

from ._support import FakeClock


def _peered(clock: FakeClock) -> tuple[StatusStore, StatusStore]:
    a, b = StatusStore.memory("region-a", clock=clock), StatusStore.memory("region-b", clock=clock)
    a.add_peer("region-b")
    b.add_peer("region-a")
    return a, b


def _sync(src: StatusStore, dst: StatusStore) -> None:
    payload = src.sync_payload_for(dst.node_id)
    assert payload is not None
    src.receive_ack(dst.node_id, dst.receive_sync(src.node_id, payload))


def test_a_peer_s_event_filters_the_same_page_s_event_in_another_region():
    a, b = _peered(FakeClock())
    assert not a.apply_event(
        component_event("acme", event_id="X", status="major_outage", seconds=1)
    ).duplicate
    _sync(a, b)
    assert b.seen("acme", "X")
    again = b.apply_event(component_event("acme", event_id="X", status="operational", seconds=2))
    assert again.duplicate and not again.changed


def test_a_peer_s_event_does_not_filter_another_page_s_event_with_the_same_id():
    a, b = _peered(FakeClock())
    a.apply_event(component_event("acme", event_id="X", status="major_outage", seconds=1))
    _sync(a, b)
    assert not b.seen("beta", "X")
    other = b.apply_event(component_event("beta", event_id="X", status="major_outage", seconds=2))
    assert not other.duplicate and other.changed
    assert b.page_status("beta")["components"][0]["status"] == "major_outage"
