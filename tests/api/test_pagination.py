"""Paging an event's deliveries while a worker is still writing them."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from notifyd.ids import delivery_id
from tests.api.conftest import Api
from tests.support.events import incident_event, ref
from tests.support.recording import Recorder
from tests.support.wait import wait_done, wait_until

SUBSCRIBERS = 700


@pytest.fixture
def slow_email(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """An instant email channel made slow enough that pages are read while shards still run."""
    from channels import registry

    rec = Recorder(delay_s=0.15)
    monkeypatch.setitem(registry._FACTORIES, "email", rec.factory("email"))
    return rec


def test_paging_deliveries_during_delivery_sees_each_exactly_once(
    start_api, start_worker, slow_email: Recorder
):
    api: Api = start_api(shard_size=50)
    with api.client("all") as http:
        rows = "".join(
            json.dumps({"channel": "email", "target": f"u{i}@example.com"}) + "\n" for i in range(SUBSCRIBERS)
        )
        assert http.post("/v1/pages/acme/subscribers:import", content=rows).json()["imported"] == SUBSCRIBERS
        # One subscriber the event's component filter leaves out: never listed.
        http.post(
            "/v1/pages/acme/subscribers",
            json={"channel": "email", "target": "x@example.com", "components": ["cdn"]},
        )
        sub_ids = [
            s["id"] for s in http.get("/v1/pages/acme/subscribers", params={"limit": 1000}).json()["items"]
        ]
        start_worker(api.runtime, threads=2)
        event = incident_event()
        http.post("/v1/events", json=event)
        path = f"/v1/events/{event['event_id']}/deliveries"
        assert wait_until(lambda: http.get(f"/v1/events/{event['event_id']}").json()["state"] != "accepted")

        seen: list[str] = []
        statuses: Counter[str] = Counter()
        cursor = None
        while True:
            params = {"limit": 37, **({"cursor": cursor} if cursor else {})}
            page = http.get(path, params=params).json()
            seen += [d["delivery_id"] for d in page["items"]]
            statuses.update(d["status"] for d in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        unfinished = http.get(f"/v1/events/{event['event_id']}").json()["state"] != "done"
        wait_done(http, event["event_id"], timeout=30)

    expected = {delivery_id(ref(event), s, "email") for s in sub_ids[:SUBSCRIBERS]}
    assert len(seen) == len(set(seen)), "a delivery was listed twice"
    assert set(seen) == expected, "a delivery was missed, or one outside the audience was listed"
    # The pages really were read while the worker was writing.
    assert statuses["pending"] > 0 or unfinished
