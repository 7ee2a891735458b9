"""Subscriber management through the API."""

from __future__ import annotations

import json

import httpx

from tests.api.conftest import Api
from tests.support.events import incident_event
from tests.support.sink import Sink
from tests.support.wait import wait_done


def test_adding_a_webhook_subscriber_is_a_201_with_its_generated_secret_shown_once(http: httpx.Client):
    r = http.post(
        "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": "https://example.com/a"}
    )
    assert r.status_code == 201
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert created["status"] == "active" and created["page_id"] == "acme"
    listed = http.get("/v1/pages/acme/subscribers").json()["items"]
    assert [s["id"] for s in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert created["secret"] not in http.get("/v1/pages/acme/subscribers").text


def test_adding_the_same_target_again_is_a_200_update_of_the_same_subscriber(http: httpx.Client):
    first = http.post("/v1/pages/acme/subscribers", json={"channel": "email", "target": "ops@example.com"})
    again = http.post(
        "/v1/pages/acme/subscribers",
        json={"channel": "email", "target": "ops@example.com", "components": ["api"]},
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["components"] == ["api"]
    assert "secret" not in again.json()


def test_an_invalid_subscriber_is_a_422_naming_the_field_and_nothing_is_stored(api: Api, http: httpx.Client):
    cases = {
        "channel": {"channel": "fax", "target": "+14155550100"},
        "target": {"channel": "sms", "target": "not a phone"},
        "nickname": {"channel": "sms", "target": "+14155550100", "nickname": "x"},
    }
    for field, body in cases.items():
        r = http.post("/v1/pages/acme/subscribers", json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
    assert api.runtime.subscribers.count("acme") == 0


def test_a_secret_given_for_a_webhook_is_never_echoed(http: httpx.Client):
    secret = "whsec_" + "A" * 32
    r = http.post(
        "/v1/pages/acme/subscribers",
        json={"channel": "webhook", "target": "https://example.com/b", "secret": secret},
    )
    assert r.status_code == 201
    assert secret not in r.text
    bad = http.post(
        "/v1/pages/acme/subscribers",
        json={
            "channel": "webhook",
            "target": "https://example.com/c",
            "secret": "whsec_short-but-" + "x" * 3,
        },
    )
    assert "whsec_short" not in bad.text


def test_subscribers_list_in_pages_following_the_cursor(http: httpx.Client):
    ids = [
        http.post("/v1/pages/acme/subscribers", json={"channel": "sms", "target": f"+1415555{i:04d}"}).json()[
            "id"
        ]
        for i in range(7)
    ]
    http.delete(f"/v1/pages/acme/subscribers/{ids[3]}")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/pages/acme/subscribers", params=params).json()
        assert len(page["items"]) <= 2
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[:3] + ids[4:]


def test_removing_a_subscriber_is_204_and_removing_it_again_is_404(http: httpx.Client):
    sub = http.post("/v1/pages/acme/subscribers", json={"channel": "sms", "target": "+14155550100"}).json()
    assert http.delete(f"/v1/pages/acme/subscribers/{sub['id']}").status_code == 204
    again = http.delete(f"/v1/pages/acme/subscribers/{sub['id']}")
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    assert http.delete(f"/v1/pages/other/subscribers/{sub['id']}").status_code == 404


def test_a_quarantined_subscriber_is_reactivated_by_an_admin(api: Api, http: httpx.Client):
    sub = http.post(
        "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": "https://example.com/q"}
    )
    sub_id = sub.json()["id"]
    stored = api.runtime.subscribers.get("acme", sub_id)
    api.runtime.subscribers.disable("acme", stored.seq, "quarantined")
    listed = {s["id"]: s for s in http.get("/v1/pages/acme/subscribers").json()["items"]}
    assert (listed[sub_id]["status"], listed[sub_id]["disabled_reason"]) == ("disabled", "quarantined")

    again = http.post(f"/v1/pages/acme/subscribers/{sub_id}/reactivate")
    assert again.status_code == 200
    assert again.json()["status"] == "active" and "disabled_reason" not in again.json()
    assert api.runtime.subscribers.get("acme", sub_id).disabled is None
    missing = http.post("/v1/pages/acme/subscribers/sub_0000000000000000/reactivate")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_an_ndjson_import_streams_and_reports_each_rejected_line(http: httpx.Client):
    def body():
        yield json.dumps({"channel": "sms", "target": "+14155550100"}).encode() + b"\n"
        yield b"\n"  # blank lines are skipped, and still counted
        yield b'{"channel": "sms", "target": "nope"}\n{not json}\n'
        yield b"[1, 2]\n"
        yield json.dumps({"channel": "sms", "target": "+14155550100", "components": ["db"]}).encode() + b"\n"
        for i in range(2500):
            yield json.dumps({"channel": "email", "target": f"user{i}@example.com"}).encode() + b"\n"
        yield b'{"channel": "email", "target": "last@example.com"}'  # no final newline

    r = http.post(
        "/v1/pages/acme/subscribers:import", content=body(), headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    summary = r.json()
    assert (summary["imported"], summary["updated"], summary["rejected_total"]) == (2502, 1, 3)
    assert [x["line"] for x in summary["rejected"]] == [3, 4, 5]
    assert "target" in summary["rejected"][0]["error"]


def test_an_import_caps_the_listed_rejections_and_counts_the_rest(http: httpx.Client):
    body = b"".join(b"{bad}\n" for _ in range(1500))
    summary = http.post("/v1/pages/acme/subscribers:import", content=body).json()
    assert len(summary["rejected"]) == 1000
    assert summary["rejected_total"] == 1500


def test_an_import_rejects_a_line_over_64_kib_without_buffering_it(http: httpx.Client):
    long_line = b'{"channel": "sms", "target": "' + b"9" * (70 * 1024) + b'"}\n'
    ok = json.dumps({"channel": "sms", "target": "+14155550199"}).encode() + b"\n"
    summary = http.post("/v1/pages/acme/subscribers:import", content=ok + long_line + ok).json()
    assert summary["imported"] == 1 and summary["updated"] == 1
    assert [x["line"] for x in summary["rejected"]] == [2]


def test_a_subscribers_recent_deliveries_are_listed_newest_first(
    api: Api, http: httpx.Client, sink: Sink, start_worker
):
    sub = http.post(
        "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/s"}
    ).json()
    start_worker(api.runtime)
    events = [incident_event() for _ in range(3)]
    for event in events:
        http.post("/v1/events", json=event)
        wait_done(http, event["event_id"])
    r = http.get(f"/v1/subscribers/{sub['id']}/deliveries")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [d["event_id"] for d in items] == [e["event_id"] for e in reversed(events)]
    assert {d["status"] for d in items} == {"delivered"}
    assert http.get("/v1/subscribers/nobody/deliveries").status_code == 404


def test_ids_are_per_page_and_the_page_route_finds_each_ones_deliveries(
    api: Api, http: httpx.Client, sink: Sink, start_worker
):
    for page in ("page-a", "page-b"):
        r = http.post(
            f"/v1/pages/{page}/subscribers",
            json={"id": "x1", "channel": "webhook", "target": f"{sink.url}/{page}"},
        )
        assert r.status_code == 201, r.text
    start_worker(api.runtime)
    event = incident_event(page="page-b")
    http.post("/v1/events", json=event)
    wait_done(http, event["event_id"])
    b = http.get("/v1/pages/page-b/subscribers/x1/deliveries").json()
    assert b["page_id"] == "page-b" and [d["event_id"] for d in b["items"]] == [event["event_id"]]
    assert http.get("/v1/pages/page-a/subscribers/x1/deliveries").json()["items"] == []
    assert http.get("/v1/pages/page-c/subscribers/x1/deliveries").status_code == 404
    ambiguous = http.get("/v1/subscribers/x1/deliveries")
    assert ambiguous.status_code == 409 and "/v1/pages/" in ambiguous.json()["detail"]
    assert http.delete("/v1/pages/page-a/subscribers/x1").status_code == 204
    assert http.get("/v1/subscribers/x1/deliveries").json()["page_id"] == "page-b"
