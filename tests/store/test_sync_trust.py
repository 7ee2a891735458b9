"""A peer's payload is checked inside, not only at its envelope: stamps and seen-id expiries."""

from __future__ import annotations

import time

import pytest

from notifyd.store import ClockSkewError, StatusStore
from notifyd.store.codec import encode_state
from notifyd.store.hlc import pack
from notifyd.store.state import PageState, StoreState
from notifyd.store.sync import KIND_DELTA, pack_message
from notifyd.store.types import LWW
from tests.support.events import component_event

HOUR_MS = 3600 * 1000


def _payload(delta: StoreState, sender: str = "peer-a") -> bytes:
    envelope = pack(int(time.time() * 1000), 0)  # an honest envelope
    return pack_message(KIND_DELTA, sender, 1, 1, envelope, encode_state(delta))


def _component_delta(at_ms: int) -> StoreState:
    delta = StoreState()
    page = PageState()
    page.components["api"] = LWW(pack(at_ms, 0), "peer-a", ("API", "major_outage"))
    delta.pages["acme"] = page
    return delta


def test_a_register_stamped_beyond_the_skew_bound_is_refused_and_changes_nothing():
    store = StatusStore.memory("local")
    store.apply_event(component_event(status="operational"))
    with pytest.raises(ClockSkewError):
        store.receive_sync("peer-a", _payload(_component_delta(int(time.time() * 1000) + HOUR_MS)))
    assert store.page_status("acme")["components"][0]["status"] == "operational"
    # A real update still wins, as it would not against a register pinned an hour ahead.
    store.apply_event(component_event(status="degraded_performance"))
    assert store.page_status("acme")["components"][0]["status"] == "degraded_performance"


def test_a_register_within_the_bound_is_merged():
    store = StatusStore.memory("local")
    store.receive_sync("peer-a", _payload(_component_delta(int(time.time() * 1000))))
    assert store.page_status("acme")["components"][0]["status"] == "major_outage"


def test_a_seen_id_expiring_beyond_the_event_id_ttl_is_refused():
    store = StatusStore.memory("local")
    delta = StoreState()
    from notifyd.store.events import event_key

    far = int(time.time()) + store.event_id_ttl_s + 3600
    delta.seen.items[event_key("acme", "inc-future-1")] = far
    with pytest.raises(ClockSkewError):
        store.receive_sync("peer-a", _payload(delta))
    assert not store.seen("acme", "inc-future-1")


def test_a_tombstone_stamped_beyond_the_skew_bound_is_refused_and_buries_nothing():
    from notifyd.store.state import IncidentState
    from tests.support.events import incident_event

    store = StatusStore.memory("local")
    store.apply_event(incident_event(status="identified"))
    delta = StoreState()
    page = delta.pages["acme"] = PageState()
    page.incidents["inc-1"] = IncidentState()
    page.incidents["inc-1"].tomb = pack(int(time.time() * 1000) + HOUR_MS, 0)
    with pytest.raises(ClockSkewError):
        store.receive_sync("peer-a", _payload(delta))
    assert store.page_status("acme")["open_incidents"][0]["status"] == "identified"
