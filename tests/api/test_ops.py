"""Health, readiness, metrics, the queue view and the dashboard."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.store import StatusStore
from tests.api.conftest import KEYS, Api
from tests.support.events import incident_event
from tests.support.sink import Sink
from tests.support.wait import wait_done


def test_healthz_is_always_ok(api: Api):
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_with_redis_and_a_loaded_store(start_api: Callable[..., Api]):
    store = StatusStore.memory("api-node")
    api = start_api(store=store)
    r = httpx.get(f"{api.url}/readyz")
    assert r.status_code == 200
    assert {k: v for k, v in r.json().items() if k != "memory_pressure"} == {
        "status": "ready",
        "redis": True,
        "store": "loaded",
        "durability": {
            "policy": "none",
            "met": True,
            "how": "none: an event is accepted once Redis has it in memory",
        },
    }
    store.close()
    assert httpx.get(f"{api.url}/readyz").status_code == 503


def test_readyz_is_503_when_redis_does_not_answer(start_api: Callable[..., Api], tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        api = start_api(redis_url=server.start())
        assert httpx.get(f"{api.url}/readyz").status_code == 200
    finally:
        server.stop()  # a real server, really gone
    r = httpx.get(f"{api.url}/readyz")
    assert (r.status_code, r.json()["redis"]) == (503, False)
    assert httpx.get(f"{api.url}/healthz").status_code == 200


def test_metrics_read_queue_depths_from_redis_at_scrape_time(api: Api, http: httpx.Client):
    http.post("/v1/events", json=incident_event(priority="critical"))
    text = httpx.get(f"{api.url}/metrics").text
    assert 'notifyd_queue_ready{lane="critical"} 1.0' in text
    for name in (
        "notifyd_queue_delayed",
        "notifyd_queue_in_flight",
        "notifyd_dead_deliveries",
        "notifyd_workers",
    ):
        assert re.search(rf"^{name}", text, re.M), name
    assert 'notifyd_api_published_total{status="accepted"}' in text
    assert 'route="/v1/events"' in text
    assert not any(key in text for key in KEYS.values())


def test_the_queue_view_shows_lanes_workers_and_recent_events(
    api: Api, http: httpx.Client, sink: Sink, start_worker
):
    http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": f"{sink.url}/q"})
    start_worker(api.runtime)
    event = incident_event()
    http.post("/v1/events", json=event)
    wait_done(http, event["event_id"])
    view = http.get("/v1/queues").json()
    assert [lane["lane"] for lane in view["lanes"]] == ["critical", "high", "normal", "low"]
    assert view["workers"] >= 1
    recent = view["recent_events"][0]
    assert recent["event_id"] == event["event_id"] and recent["counts"]["delivered"] == 1


def test_the_queue_view_lists_events_still_queued_and_those_of_pages_without_subscribers(
    api: Api, http: httpx.Client
):
    # No worker runs: both events wait in their lane; one page has no subscriber at all.
    http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": "https://a.example/h"})
    events = [incident_event(page="acme"), incident_event(page="no-subscribers-yet")]
    for event in events:
        assert http.post("/v1/events", json=event).status_code == 202
    view = http.get("/v1/queues").json()
    listed = {(e["page_id"], e["event_id"]): e["state"] for e in view["recent_events"]}
    for event in events:
        assert listed[event["page_id"], event["event_id"]] == "accepted"
    assert sum(lane["ready"] for lane in view["lanes"]) == 2


def test_the_dashboard_moves_the_key_into_an_http_only_cookie(api: Api):
    with httpx.Client(base_url=api.url) as browser:
        r = browser.get("/dashboard", params={"key": KEYS["operate"]})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        page = browser.get("/dashboard")
        assert page.status_code == 200 and "/v1/queues" in page.text
        assert browser.get("/v1/queues").status_code == 200  # the page's poll rides on the cookie
        # The cookie never authorises writes.
        assert browser.post("/v1/events/x/redrive").status_code == 401


def test_the_dashboard_cookie_holds_a_session_not_the_key_and_dies_with_the_key(api: Api):
    from notifyd.api.auth import COOKIE
    from notifyd.api.keystore import KeyStore

    store = KeyStore(api.runtime.client, api.runtime.settings.namespace)
    key = store.create({"operate"}, name="dashboard-user")
    with httpx.Client(base_url=api.url) as browser:
        assert browser.get("/dashboard", params={"key": key}).status_code == 303
        session = browser.cookies[COOKIE]
        assert key not in session and session not in key
        assert browser.get("/v1/queues").status_code == 200
        # Neither the key nor the session id is kept in Redis in clear.
        rt = api.runtime
        dump = b"".join(
            k + (rt.client.dump(k) or b"") for k in rt.client.scan_iter(match=f"{rt.keys.ns}:*", count=1000)
        )
        assert key.encode() not in dump and session.encode() not in dump
        # The session id does not work as a key.
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {session}"}) as other:
            assert other.get("/v1/queues").status_code == 401
        store.revoke(next(k for k in store.stored() if k.name == "dashboard-user").digest[:12])
        assert browser.get("/v1/queues").status_code == 401


def test_the_dashboard_refuses_a_key_without_operate_and_no_key_at_all(api: Api):
    with httpx.Client(base_url=api.url) as browser:
        assert browser.get("/dashboard").status_code == 401
        assert browser.get("/dashboard", params={"key": KEYS["publish"]}).status_code == 403
        assert "set-cookie" not in browser.get("/dashboard", params={"key": "wrong"}).headers


def test_the_dashboard_page_loads_nothing_from_elsewhere(api: Api):
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEYS['operate']}"}) as http:
        html = http.get("/dashboard").text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and 'fetch("http' not in html


def test_no_key_or_token_reaches_the_logs(api: Api, http: httpx.Client, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    http.post("/v1/events", json=incident_event())
    httpx.get(f"{api.url}/dashboard", params={"key": KEYS["operate"]})
    httpx.get(f"{api.url}/v1/events/x", headers={"Authorization": "Bearer wrong-secret-key"})
    # The server's loggers only: the test's own HTTP client logs what it sends, by design.
    server_lines = [r.getMessage() for r in caplog.records if r.name.startswith(("notifyd", "uvicorn"))]
    assert server_lines, "expected the access log to be captured"
    assert not any(k in line for line in server_lines for k in [*KEYS.values(), "wrong-secret-key"])


def test_the_access_log_filter_masks_keys_and_tokens_in_query_strings():
    from notifyd.api.server import RedactQuery

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/dashboard?key=nk_secret&x=1&token=abc", "1.1", 303),
        None,
    )
    RedactQuery().filter(record)
    assert record.getMessage() == '127.0.0.1:1 - "GET /dashboard?key=***&x=1&token=*** HTTP/1.1" 303'


def test_metrics_export_how_long_the_head_of_each_lane_has_waited(api: Api, http: httpx.Client):
    import time

    from notifyd.state.queues import lane_stats

    assert http.post("/v1/events", json=incident_event(priority="high")).status_code == 202
    later = {s.lane: s for s in lane_stats(api.runtime.client, api.runtime.keys, now=time.time() + 90)}
    assert later["high"].ready == 1 and later["high"].oldest_age_s >= 90
    assert later["critical"].oldest_age_s == 0.0  # an empty lane has waited for nothing
    text = httpx.get(f"{api.url}/metrics").text
    for lane in ("critical", "high", "normal", "low"):
        assert re.search(rf'^notifyd_queue_oldest_age_seconds{{lane="{lane}"}} ', text, re.M), lane


def test_metrics_count_open_circuits_per_channel_as_the_workers_report_them(api: Api):
    import time

    from notifyd.state import circuits

    rt = api.runtime
    text = httpx.get(f"{api.url}/metrics").text
    assert 'notifyd_circuits_open{channel="webhook"} 0.0' in text
    open_now = [
        circuits.OpenCircuit("webhook", "https://down.example.com:443", "open", 20.0),
        circuits.OpenCircuit("webhook", "https://flaky.example.com:443", "half_open", 0.0),
        circuits.OpenCircuit("sms", "twilio", "open", 5.0),
    ]
    circuits.publish(rt.client, rt.keys, "worker-1", open_now, at=time.time())
    text = httpx.get(f"{api.url}/metrics").text
    assert 'notifyd_circuits_open{channel="webhook"} 2.0' in text
    assert 'notifyd_circuits_open{channel="sms"} 1.0' in text
    assert 'notifyd_circuits_open{channel="email"} 0.0' in text


def _request_series(api: Api) -> set[str]:
    text = httpx.get(f"{api.url}/metrics").text
    return {
        line.rsplit(" ", 1)[0] for line in text.splitlines() if line.startswith("notifyd_api_requests_total{")
    }


def test_a_flood_of_made_up_methods_and_paths_adds_no_metric_series(api: Api):
    with httpx.Client(base_url=api.url) as http:
        # Warm up: one of each shape the flood uses, so the flood itself must add nothing.
        http.request("MADEUP", "/healthz")
        http.request("MADEUP", "/no/such/path")
        http.get("/no/such/path")
        http.get("/v1/events/warm-up")
        _request_series(api)  # the scrape counts itself from the second one on
        before = _request_series(api)
        for i in range(300):
            http.request(f"M{i:03d}X", "/healthz")
            if i % 15 == 0:
                http.request(f"Z{i:03d}", f"/made/up/{i}")
                http.get(f"/v1/events/ev-{i}")  # a template route: the id never becomes a label
    after = _request_series(api)
    assert after == before
    assert not any("M1" in s or "Z1" in s or "made/up" in s or "ev-1" in s for s in after)
    assert any('method="other"' in s for s in after)
