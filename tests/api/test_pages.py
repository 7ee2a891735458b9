"""Page status, one-click unsubscribe, store sync and Twilio callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from notifyd import unsubscribe
from notifyd.store import StatusStore
from tests.api.conftest import Api
from tests.support.events import component_event, incident_event, ref
from tests.support.wait import wait_done


def _email_subscriber(http: httpx.Client) -> str:
    r = http.post("/v1/pages/acme/subscribers", json={"channel": "email", "target": "reader@example.com"})
    return str(r.json()["id"])


def _token(api: Api, page_id: str, sub_id: str, target: str = "reader@example.com") -> str:
    key = api.runtime.link_keys.current().signing
    return unsubscribe.token(key, page_id, sub_id, target, int(time.time()) + 3600)


def _status_of(http: httpx.Client, sub_id: str) -> str:
    subs = http.get("/v1/pages/acme/subscribers").json()["items"]
    return next(s.get("disabled_reason", s["status"]) for s in subs if s["id"] == sub_id)


def test_page_status_without_a_loaded_store_is_a_503_problem(http: httpx.Client):
    r = http.get("/v1/pages/acme/status")
    assert r.status_code == 503
    assert r.json()["detail"] == "status store not loaded"


def test_page_status_is_the_stores_merged_state(start_api: Callable[..., Api]):
    store = StatusStore.memory("api-node")
    store.apply_event(component_event(component="db", status="partial_outage"))
    api = start_api(store=store)
    with api.client("operate") as http:
        r = http.get("/v1/pages/acme/status")
    assert r.status_code == 200
    assert r.json() == store.page_status("acme")
    assert "partial_outage" in r.text


def test_one_click_unsubscribe_disables_the_subscriber_and_can_be_clicked_twice(api: Api, http: httpx.Client):
    sub_id = _email_subscriber(http)
    url = unsubscribe.url(
        api.url, api.runtime.link_keys.current().signing, "acme", sub_id, "reader@example.com", 3600
    )
    with httpx.Client() as browser:  # no API key: the token is the credential
        for _ in range(2):
            r = browser.post(url, content=b"List-Unsubscribe=One-Click")
            assert r.status_code == 200
            assert r.json()["status"] == "unsubscribed"
    assert _status_of(http, sub_id) == "unsubscribed"


def test_the_unsubscribe_link_opened_in_a_browser_asks_before_it_unsubscribes(api: Api, http: httpx.Client):
    sub_id = _email_subscriber(http)
    params = {"subscriber": sub_id, "token": _token(api, "acme", sub_id)}
    with httpx.Client(base_url=api.url) as browser:
        page = browser.get("/v1/pages/acme/unsubscribe", params=params)
        assert page.status_code == 200 and '<form method="post"' in page.text
        assert _status_of(http, sub_id) == "active"
        done = browser.post("/v1/pages/acme/unsubscribe", params=params, headers={"accept": "text/html"})
        assert done.status_code == 200 and "Unsubscribed" in done.text
    assert _status_of(http, sub_id) == "unsubscribed"


def test_an_unsubscribe_with_a_tampered_token_is_refused_and_changes_nothing(api: Api, http: httpx.Client):
    sub_id = _email_subscriber(http)
    other_id = http.post(
        "/v1/pages/acme/subscribers", json={"channel": "email", "target": "other@example.com"}
    ).json()["id"]
    good = _token(api, "acme", sub_id)
    tampered = ("A" if good[0] != "A" else "B") + good[1:]
    with httpx.Client(base_url=api.url) as browser:
        for params in (
            {"subscriber": sub_id, "token": tampered},
            {"subscriber": other_id, "token": good},  # a token is bound to its subscriber
        ):
            assert browser.post("/v1/pages/acme/unsubscribe", params=params).status_code == 403
            assert browser.get("/v1/pages/acme/unsubscribe", params=params).status_code == 403
        # ... and to its page.
        assert (
            browser.post(
                "/v1/pages/other/unsubscribe", params={"subscriber": sub_id, "token": good}
            ).status_code
            == 403
        )
        assert browser.post("/v1/pages/acme/unsubscribe", params={"subscriber": sub_id}).status_code == 422
    assert _status_of(http, sub_id) == "active"
    assert _status_of(http, other_id) == "active"


def test_sync_merges_a_peers_delta_and_answers_the_ack(start_api: Callable[..., Api]):
    store = StatusStore.memory("api-node")
    api = start_api(store=store)
    peer = StatusStore.memory("peer-a")
    peer.add_peer("api-node")
    peer.apply_event(component_event(component="cdn", status="major_outage"))
    payload = peer.sync_payload_for("api-node")
    assert payload is not None
    with api.client("sync") as http:
        r = http.post("/v1/sync", content=payload, headers={"X-Notifyd-Peer": "peer-a"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/msgpack"
        peer.receive_ack("api-node", r.content)
        assert store.page_status("acme") == peer.page_status("acme")
        assert (
            http.post("/v1/sync", content=b"\x00garbage", headers={"X-Notifyd-Peer": "peer-a"}).status_code
            == 400
        )
        assert http.post("/v1/sync", content=payload).status_code == 422  # which peer is it?


def test_sync_is_501_when_the_store_does_not_replicate(start_api: Callable[..., Api]):
    class PlainStore:
        def page_status(self, page_id: str) -> dict[str, object]:
            return {"page_id": page_id}

    api = start_api(store=PlainStore())
    with api.client("sync") as http:
        assert http.post("/v1/sync", content=b"x", headers={"X-Notifyd-Peer": "p"}).status_code == 501


def test_twilio_status_callbacks_are_verified_and_move_the_delivery(
    start_api: Callable[..., Api], start_worker
):
    from notifyd.ids import delivery_id
    from notifyd.standins.servers import TwilioServer

    twilio = TwilioServer().start()
    try:
        api = start_api(
            public_url="https://status.example.com",
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from="+15005550006",
            twilio_base_url=twilio.url,
        )
        rt = api.runtime
        reachable = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552671"})
        unreachable = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552672"})
        start_worker(rt)
        event = incident_event()
        rt.publisher.publish(event)
        wait_done(rt, event["event_id"])
        callbacks = {r.form["To"]: r.form["StatusCallback"] for r in twilio.received}
        assert set(callbacks) == {"+14155552671", "+14155552672"}
        first = callbacks["+14155552671"]
        assert first.startswith("https://status.example.com/v1/callbacks/twilio/")
        assert delivery_id(ref(event), reachable.subscriber.id, "sms") in first

        def post(url: str, params: dict[str, str], *, sign_with: str = twilio.auth_token) -> httpx.Response:
            signature = RequestValidator(sign_with).compute_signature(url, params)
            with httpx.Client(base_url=api.url) as http:
                return http.post(
                    url.removeprefix("https://status.example.com"),
                    content=urlencode(params),
                    headers={
                        "content-type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                )

        delivered = post(first, {"MessageSid": "SM1", "MessageStatus": "delivered"})
        assert delivered.status_code == 200 and delivered.json()["status"] == "received"
        assert post(first, {"MessageStatus": "undelivered"}, sign_with="forged-token").status_code == 403
        assert rt.tracker.summary(ref(event))["counts"]["delivered"] == 2

        # The carrier could not deliver to the second number: a number that can never work.
        second = callbacks["+14155552672"]
        undelivered = {"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "21614"}
        failed = post(second, undelivered)
        assert failed.status_code == 200 and failed.json()["status"] == "failed"
        counts = rt.tracker.summary(ref(event))["counts"]
        assert (counts["delivered"], counts["failed"]) == (1, 1)
        assert rt.subscribers.get("acme", unreachable.subscriber.id).disabled == "invalid_target"
        # Twilio retries callbacks: a second report counts nothing twice.
        assert (
            post(
                second, {"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "21614"}
            ).status_code
            == 200
        )
        assert rt.tracker.summary(ref(event))["counts"]["failed"] == 1

        # Ids that the signature covers but that do not belong together are refused.
        tampered = second.replace(unreachable.subscriber.id, reachable.subscriber.id)
        assert post(tampered, {"MessageStatus": "undelivered"}).status_code == 404
    finally:
        twilio.stop()
