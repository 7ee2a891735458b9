"""The dashboard opens the event of the row clicked, when two pages used the same event id."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.api.conftest import KEYS, Api
from tests.support.events import incident_event
from tests.support.sink import Sink
from tests.support.wait import wait_until

# The generous timeout covers a first run on a fresh machine, whose setup installs chromium with apt.
pytestmark = [pytest.mark.timeout(900)]

PAGES = ("dash-a", "dash-b")
SHARED_ID = "inc-7-update-1"


def test_a_row_opens_its_own_page_s_event_when_two_pages_share_the_id(
    start_api: Callable[..., Api], start_worker: Callable[..., Any], sink: Sink, page: Any
):
    api = start_api()
    for name in PAGES:
        api.runtime.subscribers.add(name, {"channel": "webhook", "target": f"{sink.url}/{name}"})
    start_worker(api.runtime)
    with api.client("all") as http:
        for name in PAGES:
            assert http.post("/v1/events", json=incident_event(name, event_id=SHARED_ID)).status_code == 202
        for name in PAGES:
            assert wait_until(
                lambda n=name: (
                    http.get(f"/v1/events/{SHARED_ID}", params={"page": n}).json()["state"] == "done"
                )
            )

    page.goto(f"{api.url}/dashboard?key={KEYS['operate']}")
    expect(page.locator("#state")).to_have_text(re.compile(r"^updated"))
    for name in PAGES:
        page.locator(f'#events tr[data-event-id="{SHARED_ID}"][data-page-id="{name}"]').click()
        expect(page.locator("#drill-summary")).to_contain_text(f"page {name}")
