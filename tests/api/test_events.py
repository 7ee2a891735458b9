"""POST /v1/events and the event routes, through a real uvicorn server and real Redis."""

from __future__ import annotations

import json

import httpx

from notifyd.ids import delivery_id
from tests.api.conftest import KEYS, Api
from tests.support.events import component_event, incident_event, ref
from tests.support.sink import Reply, Sink
from tests.support.wait import wait_done, wait_until


def test_an_accepted_event_answers_202_and_is_in_redis_before_the_answer(api: Api, http: httpx.Client):
    event = incident_event()
    r = http.post("/v1/events", json=event)
    assert r.status_code == 202
    assert r.json() == {"event_id": event["event_id"], "status": "accepted"}
    assert api.runtime.client.exists(api.runtime.keys.event(ref(event)))


def test_the_same_event_id_again_is_a_200_duplicate(http: httpx.Client):
    event = incident_event()
    assert http.post("/v1/events", json=event).status_code == 202
    again = http.post("/v1/events", json=event)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"


def test_a_matching_dedup_key_within_the_window_is_a_200_deduplicated(http: httpx.Client):
    first = http.post("/v1/events", json=incident_event(dedup_key="db-down"))
    second = http.post("/v1/events", json=incident_event(dedup_key="db-down"))
    assert first.status_code == 202
    assert (second.status_code, second.json()["status"]) == (200, "deduplicated")


def test_an_unknown_field_is_a_422_problem_naming_the_field_and_nothing_is_enqueued(
    api: Api, http: httpx.Client
):
    before = api.queue_length()
    r = http.post("/v1/events", json=incident_event(colour="red"))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 422 and body["title"] and body["type"]
    assert {"field": "colour", "message": "Extra inputs are not permitted"} in body["errors"]
    assert api.queue_length() == before


def test_a_bad_enum_deep_in_the_event_names_the_nested_field(http: httpx.Client):
    event = incident_event()
    event["incident"]["status"] = "on_fire"
    r = http.post("/v1/events", json=event)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["incident.status"]


def test_a_body_that_is_not_json_is_a_422_naming_the_body(http: httpx.Client):
    r = http.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body"


def test_a_65_kib_body_is_refused_with_413_by_its_content_length(api: Api, http: httpx.Client):
    before = api.queue_length()
    event = incident_event()
    event["incident"]["message"] = "x" * (65 * 1024)
    r = http.post("/v1/events", content=json.dumps(event), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert api.queue_length() == before


def test_a_chunked_body_without_content_length_is_cut_off_at_64_kib(api: Api, http: httpx.Client):
    def chunks():
        yield b'{"event_id": "big", "padding": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    r = http.post("/v1/events", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert not api.runtime.client.exists(api.runtime.keys.event("big"))


def test_publishing_faster_than_the_key_limit_gets_429_with_retry_after(start_api):
    api = start_api(app_options={"publish_rate": "3/minute"})
    with api.client("publish") as http:
        answers = [http.post("/v1/events", json=incident_event()).status_code for _ in range(4)]
        limited = http.post("/v1/events", json=incident_event())
    assert answers[:3] == [202, 202, 202]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    # The limit is per key: another publisher is not held back.
    with api.client("all") as other:
        assert other.post("/v1/events", json=incident_event()).status_code == 202


def test_an_unknown_event_is_a_404_problem(http: httpx.Client):
    for path in ("/v1/events/nope", "/v1/events/nope/deliveries", "/v1/events/nope/redrive"):
        r = http.post(path) if path.endswith("redrive") else http.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"


def test_an_event_summary_follows_the_event_to_done(api: Api, http: httpx.Client, sink: Sink, start_worker):
    for i in range(3):
        http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/s{i}"})
    start_worker(api.runtime)
    event = component_event()
    http.post("/v1/events", json=event)
    wait_done(http, event["event_id"])
    summary = http.get(f"/v1/events/{event['event_id']}").json()
    assert summary["counts"]["planned"] == summary["counts"]["delivered"] == 3
    assert summary["page_id"] == "acme" and summary["type"] == "component_status_changed"
    assert summary["started_at"] and summary["finished_at"]


def test_deliveries_filter_by_status_and_channel_and_refuse_unknown_enums(
    api: Api, http: httpx.Client, sink: Sink, start_worker
):
    sink.replies["/bad"] = Reply(status=400)
    http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/good"})
    http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/bad"})
    start_worker(api.runtime)
    event = incident_event()
    http.post("/v1/events", json=event)
    path = f"/v1/events/{event['event_id']}/deliveries"
    wait_done(http, event["event_id"])
    failed = http.get(path, params={"status": "failed"}).json()
    assert [d["status"] for d in failed["items"]] == ["failed"]
    assert "HTTP 400" in failed["items"][0]["last_error"]
    assert len(http.get(path, params={"channel": "webhook"}).json()["items"]) == 2
    assert http.get(path, params={"channel": "email"}).json() == {"items": [], "next_cursor": None}
    for params in ({"status": "lost"}, {"channel": "pigeon"}, {"limit": 0}, {"limit": 1001}, {"cursor": "x"}):
        r = http.get(path, params=params)
        assert r.status_code == 422, params
        assert r.json()["errors"][0]["field"] == next(iter(params))


def test_redrive_resends_failed_deliveries_with_the_same_delivery_id(
    api: Api, http: httpx.Client, sink: Sink, start_worker
):
    sink.script("/flaky", Reply(status=400))
    added = http.post(
        "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/flaky"}
    )
    start_worker(api.runtime)
    event = incident_event()
    http.post("/v1/events", json=event)
    event_id = event["event_id"]
    assert wait_until(lambda: http.get(f"/v1/events/{event_id}").json()["counts"]["failed"] == 1)
    before = http.get(f"/v1/events/{event_id}/deliveries").json()["items"][0]

    r = http.post(f"/v1/events/{event_id}/redrive")
    assert (r.status_code, r.json()) == (202, {"event_id": event_id, "redriven": 1})

    # wait_for holds the sink's lock, so the predicate reads `received` directly.
    assert sink.wait_for(lambda: sum(r.path == "/flaky" for r in sink.received) == 2)
    assert wait_until(lambda: http.get(f"/v1/events/{event_id}").json()["counts"]["delivered"] == 1)
    after = http.get(f"/v1/events/{event_id}/deliveries").json()["items"][0]
    expected = delivery_id(ref(event), added.json()["id"], "webhook")
    assert before["delivery_id"] == after["delivery_id"] == expected
    assert {r.headers["webhook-id"] for r in sink.on("/flaky")} == {expected}
    assert after["status"] == "delivered"
    # Nothing failed is left, so a second redrive re-sends nothing.
    assert http.post(f"/v1/events/{event_id}/redrive").json()["redriven"] == 0


def test_problem_bodies_never_echo_the_key_that_was_sent(api: Api):
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEYS['publish']}"}) as http:
        r = http.get("/v1/events/x")
    assert r.status_code == 403
    assert KEYS["publish"] not in r.text


def test_the_publish_limit_is_per_lane_so_a_low_flood_leaves_the_critical_budget(start_api):
    api = start_api(app_options={"publish_rate": "2/minute"})
    with api.client("publish") as http:
        for _ in range(2):
            assert http.post("/v1/events", json=incident_event(priority="low")).status_code == 202
        limited = http.post("/v1/events", json=incident_event(priority="low"))
        assert limited.status_code == 429 and "low lane" in limited.json()["detail"]
        assert http.post("/v1/events", json=incident_event(priority="critical")).status_code == 202
