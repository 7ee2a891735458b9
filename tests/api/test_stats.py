"""The dashboard's data routes (/v1/stats/*) over a real worker, and its cookie-plus-token writes."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from notifyd.api.auth import COOKIE, CSRF_HEADER, csrf_token
from tests.api.conftest import KEYS, Api
from tests.support.events import incident_event
from tests.support.sink import Reply, Sink
from tests.support.wait import wait_done, wait_until

STATS = ("/v1/stats/throughput", "/v1/stats/retries", "/v1/stats/endpoints")


def _done(http: httpx.Client, event_id: str) -> bool:
    return http.get(f"/v1/events/{event_id}").json()["state"] == "done"


@contextmanager
def _dashboard_browser(api: Api) -> Iterator[httpx.Client]:
    """An HTTP client holding the dashboard's cookie, as a browser would after ?key=."""
    with httpx.Client(base_url=api.url) as browser:
        assert browser.get("/dashboard", params={"key": KEYS["operate"]}).status_code == 303
        yield browser


def test_the_stats_routes_take_an_operate_key_or_the_dashboard_cookie(api: Api):
    for path in STATS:
        assert httpx.get(f"{api.url}{path}").status_code == 401
        with api.client("publish") as http:
            assert http.get(path).status_code == 403
        with api.client("operate") as http:
            assert http.get(path).status_code == 200
    with _dashboard_browser(api) as browser:
        assert all(browser.get(path).status_code == 200 for path in STATS)


def test_throughput_counts_a_fan_out_on_its_lane_with_its_latency(api: Api, sink: Sink, start_worker):
    with api.client("admin") as http:
        for i in range(20):
            http.post(
                "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/t/{i}"}
            )
    start_worker(api.runtime)
    event = incident_event(priority="critical")
    with api.client("all") as http:
        http.post("/v1/events", json=event)
        wait_done(http, event["event_id"])
        view = http.get("/v1/stats/throughput").json()
    lanes = {lane["lane"]: lane for lane in view["lanes"]}
    assert sum(lanes["critical"]["delivered"]) == 20
    assert sum(sum(lane["delivered"]) for lane in view["lanes"]) == 20
    assert lanes["critical"]["latency_ms"]["p50"] is not None and lanes["high"]["latency_ms"]["p50"] is None
    assert view["delivered_per_s"] > 0


def test_a_host_that_refuses_connections_shows_as_an_open_circuit(api: Api, start_worker):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with api.client("admin") as http:
        for i in range(6):
            http.post(
                "/v1/pages/acme/subscribers",
                json={"channel": "webhook", "target": f"http://127.0.0.1:{port}/x/{i}"},
            )
    worker = start_worker(api.runtime)
    event = incident_event()
    with api.client("all") as http:
        http.post("/v1/events", json=event)
        assert wait_until(
            lambda: http.get(f"/v1/events/{event['event_id']}").json()["counts"]["retrying"] == 6
        )
        worker.reporter.publish_now()  # rather than waiting for its next round
        view = http.get("/v1/stats/endpoints").json()
        assert view["workers_reporting"] == 1
        (circuit,) = view["circuits"]
        assert (circuit["channel"], circuit["key"], circuit["state"]) == (
            "webhook",
            f"http://127.0.0.1:{port}",
            "open",
        )
        assert circuit["retry_in_s"] > 0
        worker.stop()
        assert http.get("/v1/stats/endpoints").json() == {
            "workers_reporting": 0,
            "circuits": [],
            "quarantined": [],
        }


def test_an_endpoint_quarantined_by_the_pipeline_is_listed_until_reactivated(
    api: Api, sink: Sink, start_worker
):
    sink.replies["/rejects/secret-path"] = Reply(400)
    with api.client("admin") as http:
        sub = http.post(
            "/v1/pages/acme/subscribers",
            json={"channel": "webhook", "target": f"{sink.url}/rejects/secret-path"},
        ).json()
    start_worker(api.runtime)
    with api.client("all") as http:
        for _ in range(10):  # the tenth failure within the hour quarantines
            event = incident_event()
            http.post("/v1/events", json=event)
            wait_done(http, event["event_id"])
        (listed,) = http.get("/v1/stats/endpoints").json()["quarantined"]
        assert (listed["subscriber_id"], listed["page_id"], listed["channel"]) == (
            sub["id"],
            "acme",
            "webhook",
        )
        assert listed["endpoint"] == sink.url and "secret" not in str(listed)
        assert http.post(f"/v1/pages/acme/subscribers/{sub['id']}/reactivate").status_code == 200
        assert http.get("/v1/stats/endpoints").json()["quarantined"] == []


def test_the_dashboard_cookie_redrives_only_with_the_pages_csrf_token(
    start_api: Callable[..., Any], sink: Sink, start_worker
):
    api = start_api(retry_schedule_webhook="0.1", retry_jitter=0.0)
    sink.script("/once", Reply(400))
    with api.client("admin") as http:
        http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/once"})
    start_worker(api.runtime)
    event = incident_event()
    with api.client("all") as http:
        http.post("/v1/events", json=event)
        assert wait_until(lambda: http.get(f"/v1/events/{event['event_id']}").json()["counts"]["failed"] == 1)
    redrive = f"/v1/events/{event['event_id']}/redrive"
    with _dashboard_browser(api) as browser:
        page = browser.get("/dashboard").text
        token = re.search(r'<meta name="notifyd-csrf" content="([0-9a-f]{64})">', page).group(1)  # type: ignore[union-attr]
        assert token == csrf_token(browser.cookies[COOKIE]) and KEYS["operate"] not in page
        assert '<meta name="notifyd-scopes" content="operate">' in page
        assert browser.post(redrive).status_code == 401
        assert browser.post(redrive, headers={CSRF_HEADER: csrf_token(KEYS["admin"])}).status_code == 401
        assert browser.post(redrive, headers={CSRF_HEADER: "é".encode("latin-1")}).status_code == 401
        answer = browser.post(redrive, headers={CSRF_HEADER: token})
    assert (answer.status_code, answer.json()["redriven"]) == (202, 1)
    assert sink.wait_for(lambda: len(sink.on("/once")) == 2)
