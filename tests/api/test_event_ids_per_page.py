"""Event ids are unique per page: a key for page A cannot take page B's event id first.

Before, ``ev:{event_id}`` was global, so a publish key for A that published B's next id
(``inc-42-update-3``) turned B's real event into a duplicate that delivered nothing.
"""

from __future__ import annotations

import json

import httpx
import pytest

from notifyd.ids import delivery_id
from notifyd.models import Event
from notifyd.pipeline.steps import INGEST, StepQueue
from notifyd.state.keys import event_ref
from tests.api.conftest import API_KEYS, KEYS, Api
from tests.support.events import incident_event
from tests.support.wait import wait_done

A, B = "squat-a", "squat-b"
KEY_A = "squat-a-key-0123456789abcdefghijklmnopq"
KEY_B = "squat-b-key-0123456789abcdefghijklmnopq"
PAGE_KEYS = f"{KEY_A}:publish+operate@{A}/critical,{KEY_B}:publish+operate@{B}/critical"
SHARED_ID = "inc-42-update-3"


@pytest.fixture
def api(start_api) -> Api:
    return start_api(api_keys=f"{API_KEYS},{PAGE_KEYS}")


def _client(api: Api, key: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=15)


def test_another_page_taking_an_event_id_first_does_not_stop_the_real_event(api: Api, sink, start_worker):
    rt = api.runtime
    hook = rt.subscribers.add(B, {"channel": "webhook", "target": f"{sink.url}/b"})
    start_worker(rt)
    with _client(api, KEY_A) as a, _client(api, KEY_B) as b:
        squat = a.post("/v1/events", json=incident_event(A, event_id=SHARED_ID))
        assert (squat.status_code, squat.json()["status"]) == (202, "accepted")
        real = b.post("/v1/events", json=incident_event(B, event_id=SHARED_ID))
        assert (real.status_code, real.json()["status"]) == (202, "accepted")

        summary = wait_done(b, SHARED_ID)
        assert (summary["page_id"], summary["counts"]["delivered"]) == (B, 1)
        (sent,) = [r for r in sink.received if r.path == "/b"]
        assert (sent.json()["event_id"], sent.json()["page_id"]) == (SHARED_ID, B)
        # The delivery id is the page's event's: another page's same id never shares it.
        assert sent.headers["webhook-id"] == delivery_id(
            event_ref(B, SHARED_ID), hook.subscriber.id, "webhook"
        )
        assert sent.headers["webhook-id"] != delivery_id(
            event_ref(A, SHARED_ID), hook.subscriber.id, "webhook"
        )
        # Each page's key reads its own page's event under the shared id.
        assert a.get(f"/v1/events/{SHARED_ID}").json()["page_id"] == A
        assert b.get(f"/v1/events/{SHARED_ID}").json()["page_id"] == B


def test_the_same_event_id_twice_on_one_page_is_still_a_duplicate(api: Api):
    with _client(api, KEY_A) as a, _client(api, KEY_B) as b:
        assert a.post("/v1/events", json=incident_event(A, event_id="dup-1")).json()["status"] == "accepted"
        again = a.post("/v1/events", json=incident_event(A, event_id="dup-1"))
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
        assert b.post("/v1/events", json=incident_event(B, event_id="dup-1")).json()["status"] == "accepted"
        again = b.post("/v1/events", json=incident_event(B, event_id="dup-1"))
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")


def test_an_all_pages_key_names_the_page_when_two_pages_used_the_id(api: Api):
    with _client(api, KEYS["all"]) as admin:
        for page in (A, B):
            assert admin.post("/v1/events", json=incident_event(page, event_id="both-1")).status_code == 202
        ambiguous = admin.get("/v1/events/both-1")
        assert ambiguous.status_code == 409
        assert ambiguous.headers["content-type"].startswith("application/problem+json")
        assert A in ambiguous.json()["detail"] and B in ambiguous.json()["detail"]
        assert admin.get("/v1/events/both-1", params={"page": B}).json()["page_id"] == B
        assert admin.get("/v1/events/both-1/deliveries", params={"page": A}).json()["items"] == []
        assert admin.post("/v1/events/both-1/redrive", params={"page": A}).json()["redriven"] == 0
        assert admin.get("/v1/events/both-1", params={"page": "nobody"}).status_code == 404


def test_an_event_in_flight_at_the_upgrade_is_delivered_where_it_was_written(runtime, sink, start_worker):
    """What an older notifyd left: the record under the global key, and an ingest message that
    names the bare event id. It is delivered with the delivery ids it would have had, and a
    publisher's retry of it is still a duplicate; the same id on another page is not."""
    rt = runtime()
    hook = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/old"})
    event = incident_event("acme", event_id="before-upgrade-1")
    lane = Event.model_validate(event).lane
    rt.client.hset(
        rt.keys.event("before-upgrade-1"),  # a bare id is the ref of a record from before pages
        mapping={
            "body": json.dumps(Event.model_validate(event).wire()),
            "page_id": "acme",
            "type": event["type"],
            "priority": lane,
            "accepted_at": "1700000000.000",
            "msg": "older-message-id",
        },
    )
    StepQueue(rt.broker, rt.keys).enqueue(INGEST, lane, ("before-upgrade-1",))
    start_worker(rt)

    summary = wait_done(rt, "before-upgrade-1")
    assert (summary["page_id"], summary["counts"]["delivered"]) == ("acme", 1)
    (sent,) = [r for r in sink.received if r.path == "/old"]
    assert sent.headers["webhook-id"] == delivery_id("before-upgrade-1", hook.subscriber.id, "webhook")
    assert rt.publisher.publish(event).status == "duplicate"
    assert rt.publisher.publish(incident_event("beta", event_id="before-upgrade-1")).status == "accepted"
