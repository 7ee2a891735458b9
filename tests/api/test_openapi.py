"""The OpenAPI document says what the code enforces: readable operation ids, an example per
operation, each channel's target rule, strict types, and an Allow header that names every method."""

from __future__ import annotations

import re

import httpx
import pytest

from notifyd.api.openapi import has_example
from tests.api.conftest import Api
from tests.support.events import incident_event


@pytest.fixture(scope="module")
def document(shared_api: Api) -> dict:
    return httpx.get(f"{shared_api.url}/openapi.json").json()


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_operation_id_is_a_readable_unique_camel_case_name(document: dict):
    ids = {f"{m.upper()} {p}": op["operationId"] for m, p, op in _operations(document)}
    assert ids["POST /v1/events"] == "publishEvent"
    assert ids["GET /v1/events/{event_id}/deliveries"] == "listEventDeliveries"
    assert ids["POST /v1/pages/{page_id}/subscribers:import"] == "importSubscribers"
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", i) for i in ids.values()), ids
    assert len(set(ids.values())) == len(ids)


def test_every_operation_shows_an_example(document: dict):
    components = document["components"]["schemas"]
    missing = [f"{m.upper()} {p}" for m, p, op in _operations(document) if not has_example(op, components)]
    assert not missing
    body = document["paths"]["/v1/pages/{page_id}/subscribers:import"]["post"]["requestBody"]
    assert body["content"]["application/x-ndjson"]["example"].count("\n") == 2


def test_the_subscriber_schema_gives_each_channel_its_target_rule(document: dict):
    schemas = document["components"]["schemas"]
    assert schemas["Subscriber"]["discriminator"]["propertyName"] == "channel"
    sms = schemas["SmsSubscriber"]["properties"]["target"]["pattern"]
    assert re.match(sms, "+14155552671") and re.match(sms, "+441632960961")
    assert not re.match(sms, "+1") and not re.match(sms, "+1 415 555 2671")
    assert schemas["EmailSubscriber"]["properties"]["target"]["format"] == "email"
    assert schemas["WebhookSubscriber"]["properties"]["target"]["format"] == "uri"
    # Only webhooks carry a secret; only webhook and Slack subscribers a contact address.
    assert schemas["SmsSubscriber"]["properties"]["secret"] == {"type": "null"}
    assert schemas["EmailSubscriber"]["properties"]["contact_email"] == {"type": "null"}


def test_the_server_refuses_what_the_sms_pattern_refuses(shared_api: Api):
    with shared_api.client("admin") as http:
        for target in ("+1", "+1415555", "+1 415 555 2671"):
            r = http.post("/v1/pages/acme/subscribers", json={"channel": "sms", "target": target})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target", target
        assert http.post(
            "/v1/pages/acme/subscribers", json={"channel": "sms", "target": "+14155550123"}
        ).is_success


def test_a_webhook_url_must_be_made_of_uri_characters(shared_api: Api):
    with shared_api.client("admin") as http:
        r = http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": "https://Ï/x"})
        assert r.status_code == 422 and "percent-encode" in r.json()["detail"]


def test_notify_and_occurred_at_are_strictly_typed(shared_api: Api):
    with shared_api.client("publish") as http:
        for field, value in (("notify", 0), ("notify", "false"), ("occurred_at", 1764680400)):
            r = http.post("/v1/events", json=incident_event(**{field: value}))
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (field, value)


def test_an_import_without_a_body_is_a_422_problem(shared_api: Api):
    with shared_api.client("admin") as http:
        r = http.post("/v1/pages/acme/subscribers:import", headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] == [{"field": "body", "message": "the body is empty"}]


@pytest.mark.parametrize(
    ("path", "documented"),
    [
        ("/v1/pages/acme/subscribers", {"GET", "POST"}),
        ("/v1/pages/acme/unsubscribe?subscriber=s&token=t", {"GET", "POST"}),
        ("/v1/events", {"POST"}),
    ],
)
def test_a_405_names_every_method_of_the_path_in_allow(shared_api: Api, path: str, documented: set[str]):
    with shared_api.client("all") as http:
        r = http.request("PATCH", path)
    assert r.status_code == 405
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert allowed == documented


def test_quiet_hours_tz_is_an_enum_of_the_zones_the_server_accepts(document: dict, shared_api: Api):
    from notifyd.models import TIME_ZONES

    schemas = document["components"]["schemas"]
    zones = schemas["QuietHours"]["properties"]["tz"]["enum"]
    assert set(zones) == TIME_ZONES and "Europe/Berlin" in zones
    with shared_api.client("admin") as http:
        for i, tz in enumerate(("Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "0" * 63)):
            quiet = {"tz": tz, "start": "22:00", "end": "07:00"}
            subscriber = {
                "channel": "webhook",
                "target": f"https://hooks.example.com/tz/{i}",
                "quiet_hours": quiet,
            }
            r = http.post("/v1/pages/acme/subscribers", json=subscriber)
            assert r.status_code == (201 if tz in TIME_ZONES else 422), (tz, r.text)


def test_the_delivery_statuses_the_document_lists_are_exactly_those_a_tracking_record_can_hold(
    document: dict,
):
    """The API's status enum (query filter and answers) and tracking.STATUS_CODES are one set: a
    status added to one but not the other would be a filter that matches nothing, or an answer
    the document forbids."""
    from typing import get_args

    from notifyd.state.tracking import STATUS_CODES, DeliveryStatus, Record

    assert set(get_args(DeliveryStatus)) == set(STATUS_CODES)
    assert len(set(STATUS_CODES.values())) == len(STATUS_CODES)  # one code per status
    for status in STATUS_CODES:  # each round-trips through its stored form
        assert Record.decode(Record(status, 1, 2).encode()).status == status
    deliveries = document["paths"]["/v1/events/{event_id}/deliveries"]["get"]
    [status_filter] = [p for p in deliveries["parameters"] if p["name"] == "status"]
    enums = [s["enum"] for s in _walk_schemas(status_filter["schema"]) if "enum" in s]
    assert enums and all(set(e) == set(STATUS_CODES) for e in enums), status_filter
    record = document["components"]["schemas"]["Delivery"]["properties"]["status"]
    assert set(record["enum"]) == set(STATUS_CODES)


def _walk_schemas(schema: dict) -> list[dict]:
    found = [schema]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _walk_schemas(sub)
    return found
