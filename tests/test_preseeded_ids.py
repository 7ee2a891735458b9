"""A peer cannot pre-seed event ids: a seen mark counts only with the event's effect behind it.

A region that takes an event marks its id seen and applies it in one store delta, so its peers
get both. A peer that sends the mark alone, for an event it never took (say the id of the next
update of an incident), would have the real event filtered as a replicated duplicate; instead
the event is delivered, and the mark is counted as unbacked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.engine import Engine
from notifyd.store import StatusStore
from notifyd.store.codec import encode_state
from notifyd.store.events import event_key
from notifyd.store.hlc import pack
from notifyd.store.state import StoreState
from notifyd.store.sync import KIND_DELTA, pack_message
from tests.support.events import component_event, incident_event, ref
from tests.support.wait import wait_done


def _unbacked() -> float:
    return REGISTRY.get_sample_value("notifyd_events_unbacked_seen_total") or 0.0


def _claim_only(store: StatusStore, page_id: str, event_id: str) -> None:
    """What a lying peer sends: the id's seen mark, within the TTL, and nothing else."""
    delta = StoreState()
    delta.seen.items[event_key(page_id, event_id)] = int(time.time()) + 3600
    envelope = pack(int(time.time() * 1000), 0)
    store.receive_sync(
        "us-worker0", pack_message(KIND_DELTA, "us-worker0", 1, 1, envelope, encode_state(delta))
    )


def _took(store: StatusStore, event: dict) -> None:
    """What an honest peer sends after taking the event: its mark and its effect, in one delta."""
    peer = StatusStore.memory("us-worker0")
    peer.add_peer(store.node_id)
    peer.apply_event(event)
    payload = peer.sync_payload_for(store.node_id)
    assert payload is not None
    store.receive_sync("us-worker0", payload)


@pytest.fixture
def region(runtime, recorder) -> Iterator:
    rt = runtime()
    rt.subscribers.add("acme", {"channel": "email", "target": "ops@example.com"})
    store = StatusStore.memory("eu-worker0")
    engine = Engine(rt, AdapterPool(rt.settings), store)
    yield rt, engine, store
    engine.close()


def test_an_event_whose_id_a_peer_only_claimed_is_delivered_and_the_claim_counted(region, recorder):
    rt, engine, store = region
    event = incident_event(event_id="inc-42-update-4")
    _claim_only(store, "acme", "inc-42-update-4")
    assert store.seen("acme", "inc-42-update-4") and not store.taken(event)
    before = _unbacked()
    assert rt.publisher.publish(event).status == "accepted"
    engine.ingest(ref(event))
    summary = wait_done(rt, event["event_id"])
    assert "filtered" not in rt.tracker.event_hash(ref(event))
    assert summary["counts"]["delivered"] == 1
    assert [s.target for s in recorder.for_event(event["event_id"])] == ["ops@example.com"]
    assert _unbacked() == before + 1
    assert store.taken(event)  # now it was taken, here


def test_an_event_a_peer_really_took_is_still_a_replicated_duplicate(region, recorder):
    rt, engine, store = region
    event = incident_event(event_id="inc-42-update-5")
    _took(store, event)
    assert store.taken(event)
    before = _unbacked()
    assert rt.publisher.publish(event).status == "accepted"
    engine.ingest(ref(event))
    assert rt.tracker.event_hash(ref(event))["filtered"].startswith("replicated_duplicate")
    assert recorder.for_event(event["event_id"]) == []
    assert _unbacked() == before


def test_a_component_event_counts_as_taken_when_the_state_is_as_new_as_it():
    store = StatusStore.memory("eu-worker0")
    older = component_event("acme", event_id="cmp-1", status="major_outage", seconds=10)
    newer = component_event("acme", event_id="cmp-2", status="operational", seconds=20)
    _took(store, newer)
    _took(store, older)  # stale where it was taken: recorded, changing nothing
    assert store.taken(older) and store.taken(newer)
    later = component_event("acme", event_id="cmp-3", status="degraded_performance", seconds=30)
    _claim_only(store, "acme", "cmp-3")
    assert not store.taken(later)
    result = store.apply_event(later, require_effect=True)
    assert not result.duplicate and result.unbacked and result.changed
    # Without require_effect, the store's own rule is unchanged: a marked id is a duplicate.
    _claim_only(store, "acme", "cmp-4")
    assert store.apply_event(component_event("acme", event_id="cmp-4", seconds=40)).duplicate


def test_an_event_of_a_compacted_incident_still_counts_as_taken():
    from tests.store._support import FakeClock

    clock = FakeClock()
    store = StatusStore.memory("eu-worker0", clock=clock, incident_retention_s=60, tombstone_retention_s=600)
    first = incident_event(event_id="old-1", status="investigating", seconds=1)
    store.apply_event(first)
    store.apply_event(incident_event(event_id="old-2", status="resolved", seconds=2))
    clock.advance(120)
    assert store.compact()["incidents"] == 1  # its timeline is gone; its tombstone stays
    assert store.taken(first)
    assert store.apply_event(first, require_effect=True).duplicate
