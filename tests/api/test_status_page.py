"""The public status page: no key, nothing private, cacheable; HTML pages carry security headers."""

from __future__ import annotations

import httpx

from notifyd.models import Event
from notifyd.pipeline.render import notification_for
from tests.api.conftest import Api
from tests.support.events import component_event, incident_event


def _publish_to_store(api: Api, page: str) -> dict:
    event = incident_event(page=page)
    event["incident"]["message"] = "Failover <b>in</b> progress"
    api.store.apply_event(event)
    api.store.apply_event(component_event(page=page))
    return event


def test_the_status_page_needs_no_key_and_shows_components_and_open_incidents(shared_api: Api):
    event = _publish_to_store(shared_api, "public-page")
    api = shared_api
    with httpx.Client(base_url=api.url) as anonymous:
        page = anonymous.get("/status/public-page")
        data = anonymous.get("/status/public-page", params={"format": "json"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Database outage" in page.text and "Failover &lt;b&gt;in&lt;/b&gt; progress" in page.text
    assert page.headers["cache-control"] == "public, max-age=30"
    body = data.json()
    assert [c["status"] for c in body["components"]] == ["major_outage"]
    assert body["open_incidents"][0]["updates"][0]["message"] == event["incident"]["message"]


def test_the_status_page_holds_nothing_private(shared_api: Api):
    event = _publish_to_store(shared_api, "private-bits")
    with shared_api.client("all") as admin:
        sub = admin.post(
            "/v1/pages/private-bits/subscribers", json={"channel": "email", "target": "someone@example.com"}
        ).json()
    with httpx.Client(base_url=shared_api.url) as anonymous:
        text = anonymous.get("/status/private-bits", params={"format": "json"}).text
        html = anonymous.get("/status/private-bits").text
    for private in (
        event["event_id"],
        "someone@example.com",
        sub["id"],
        "hlc",
        "node",
        shared_api.store.node_id,
    ):
        assert private not in text and private not in html, private


def test_an_unknown_status_page_is_404(shared_api: Api):
    r = httpx.get(f"{shared_api.url}/status/nobody-here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_notifications_link_to_the_public_status_page(shared_api: Api):
    event = Event.model_validate(incident_event(page="ns:linked"))
    notification = notification_for(event, None, "https://status.example.com/")
    assert notification.link == "https://status.example.com/status/ns%3Alinked"
    _publish_to_store(shared_api, "linked-page")
    link = notification_for(
        Event.model_validate(incident_event(page="linked-page")), None, shared_api.url
    ).link
    assert httpx.get(link).status_code == 200


def test_html_pages_carry_csp_frame_and_sniffing_headers(shared_api: Api):
    _publish_to_store(shared_api, "headers")
    with shared_api.client("operate") as http:
        pages = [http.get(path) for path in ("/dashboard", "/status/headers", "/docs", "/redoc")]
    for page in pages:
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
    for page in pages:
        # Every HTML page, the API docs included, loads from this origin only.
        assert "http" not in page.headers["content-security-policy"]
    docs_csp = pages[2].headers["content-security-policy"]
    assert "script-src 'self';" in docs_csp and "'unsafe-inline'" not in docs_csp  # /docs: 'self' only
    assert httpx.get(f"{shared_api.url}/healthz").headers["x-content-type-options"] == "nosniff"
