"""The dashboard in headless Chromium: the numbers move during a fan-out, an event's failed
deliveries open from the page, and the page's redrive button sends them again."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.api.conftest import KEYS, Api
from tests.support.browser import Screenshots
from tests.support.events import incident_event
from tests.support.sink import Reply, Sink
from tests.support.wait import wait_until

# The generous timeout covers a first run on a fresh machine, whose setup installs chromium with apt.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DELIVERED = 300
REJECTED = 5  # answer 400 once, then 200: failed, and delivered after a redrive
GONE = 5  # answer 410: failed, and the subscriber is disabled


def _number(text: str) -> int:
    return int(text.replace(",", "").replace("\u202f", "").strip() or 0) if text.strip() != "–" else -1


def _import(api: Api, sink: Sink) -> None:
    lines = [{"channel": "webhook", "target": f"{sink.url}/ok/{i}"} for i in range(DELIVERED)]
    lines += [{"channel": "webhook", "target": f"{sink.url}/bad/{i}"} for i in range(REJECTED)]
    lines += [{"channel": "webhook", "target": f"{sink.url}/gone/{i}"} for i in range(GONE)]
    for i in range(DELIVERED):
        # Slow enough, with few send slots, that the fan-out takes a few of the page's polls.
        sink.replies[f"/ok/{i}"] = Reply(200, delay_s=0.1)
    for i in range(REJECTED):
        sink.script(f"/bad/{i}", Reply(400))
    for i in range(GONE):
        sink.replies[f"/gone/{i}"] = Reply(410)
    body = "\n".join(json.dumps(line) for line in lines).encode()
    with api.client("admin") as http:
        answer = http.post(
            "/v1/pages/acme/subscribers:import",
            content=body,
            headers={"content-type": "application/x-ndjson"},
        ).json()
    assert answer["imported"] == DELIVERED + REJECTED + GONE, answer


def test_the_dashboard_shows_a_fan_out_moving_and_redrives_its_failed_deliveries(
    start_api: Callable[..., Api],
    start_worker: Callable[..., Any],
    sink: Sink,
    page: Any,
    screenshots: Screenshots,
):
    api = start_api(webhook_concurrency=8, host_concurrency=8)
    _import(api, sink)
    start_worker(api.runtime)

    page.goto(f"{api.url}/dashboard?key={KEYS['operate']}")
    expect(page.locator("#state")).to_have_text(re.compile(r"^updated"))
    assert page.url == f"{api.url}/dashboard"  # the key left the address bar for the cookie
    assert _number(page.inner_text("#t-delivered")) == 0
    screenshots.take(page, "idle")

    event = incident_event()
    with api.client("publish") as http:
        assert http.post("/v1/events", json=event).status_code == 202

    # Watch the page, not the API: every value the delivered tile shows, in order.
    seen: list[int] = []
    rates: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen.append(_number(page.inner_text("#t-delivered")))
        rates.append(_number(page.inner_text("#t-rate")))
        if 0 < seen[-1] < DELIVERED and len(screenshots.taken) == 1:
            screenshots.take(page, "fan-out-in-progress")
        if seen[-1] >= DELIVERED:
            break
        page.wait_for_timeout(150)
    assert seen[-1] == DELIVERED, seen[-20:]
    moving = [v for v in seen if 0 < v < DELIVERED]
    assert moving, f"the page never showed the fan-out in progress: {sorted(set(seen))}"
    assert seen == sorted(seen), "the delivered tile went backwards"
    assert max(rates) > 0, "the delivered / s tile never moved"
    assert page.locator("#chart-throughput polyline[data-series=normal]").count() == 1
    expect(page.locator("#t-p50")).not_to_have_text("–")
    screenshots.take(page, "fan-out-done")

    # The event's failed deliveries, opened from the recent-events table.
    failed_count = REJECTED + GONE
    with api.client("operate") as http:
        assert wait_until(
            lambda: http.get(f"/v1/events/{event['event_id']}").json()["counts"]["failed"] == failed_count
        )
    page.locator(f'#events tr[data-event-id="{event["event_id"]}"]').click()
    rows = page.locator("#drill-failed tr[data-delivery-id]")
    expect(rows).to_have_count(failed_count)
    reasons = page.inner_text("#drill-failed")
    assert reasons.count("HTTP 400") == REJECTED and reasons.count("HTTP 410") == GONE
    shown_ids = {rows.nth(i).get_attribute("data-delivery-id") for i in range(failed_count)}
    first_ids = {sink.on(f"/bad/{i}")[0].headers["webhook-id"] for i in range(REJECTED)}
    assert first_ids < shown_ids
    screenshots.take(page, "failed-deliveries")

    # Redrive from the page: the rejected ones are sent again under the same delivery ids.
    button = page.locator("#redrive")
    assert button.is_visible()
    button.click()
    expect(page.locator("#redrive-result")).to_have_text(f"redriven: {failed_count}")
    assert sink.wait_for(lambda: all(len(sink.on(f"/bad/{i}")) == 2 for i in range(REJECTED)), timeout=30)
    resent = {sink.on(f"/bad/{i}")[1].headers["webhook-id"] for i in range(REJECTED)}
    assert resent == first_ids
    assert all(len(sink.on(f"/gone/{i}")) == 1 for i in range(GONE))  # disabled by its 410: not re-sent
    expect(page.locator("#drill-failed .empty")).to_have_count(1)
    screenshots.take(page, "after-redrive")
    assert [p.name for p in screenshots.taken] == [
        "01-idle.png",
        "02-fan-out-in-progress.png",
        "03-fan-out-done.png",
        "04-failed-deliveries.png",
        "05-after-redrive.png",
    ]


def test_the_dashboard_shows_open_circuits_and_how_long_a_lane_has_waited(
    start_api: Callable[..., Api], page: Any, screenshots: Screenshots
):
    from notifyd.state import circuits

    api = start_api()
    rt = api.runtime
    # No worker runs: the event waits at the head of the critical lane.
    with api.client("publish") as http:
        assert http.post("/v1/events", json=incident_event(priority="critical")).status_code == 202
    down = circuits.OpenCircuit("webhook", "https://down.example.com:443", "open", 25.0)
    circuits.publish(rt.client, rt.keys, "worker-a", [down], at=time.time())
    circuits.publish(rt.client, rt.keys, "worker-b", [down], at=time.time())

    page.goto(f"{api.url}/dashboard?key={KEYS['operate']}")
    expect(page.locator("#state")).to_have_text(re.compile(r"^updated"))
    row = page.locator("#circuits tr").filter(has_text="https://down.example.com:443")
    row.wait_for()
    cells = [row.locator("td").nth(i).inner_text() for i in range(5)]
    assert (cells[0], cells[2], cells[4]) == ("webhook", "open", "2")
    oldest = page.locator('#lanes tr[data-lane="critical"] td.oldest').inner_text()
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", oldest), oldest
    assert page.locator('#lanes tr[data-lane="low"] td.oldest').inner_text() == "–"
    assert page.locator("#t-ready").inner_text() == "1"
    screenshots.take(page, "open-circuits-and-waiting-lane")
    assert [p.name for p in screenshots.taken] == ["01-open-circuits-and-waiting-lane.png"]
