"""Every authenticated route: no key is a 401, a key without the scope a 403, the right scope a 2xx."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from notifyd.api.keystore import KeyStore
from notifyd.store import StatusStore
from tests.api.conftest import KEYS, Api
from tests.support.events import incident_event

Request = tuple[str, str, dict[str, Any]]


def _event(http: httpx.Client) -> str:
    event = incident_event()
    http.post("/v1/events", json=event)
    return str(event["event_id"])


def _subscriber(http: httpx.Client) -> str:
    r = http.post(
        "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": "https://example.com/h"}
    )
    return str(r.json()["id"])


def _sync_payload(api: Api) -> dict[str, Any]:
    peer = StatusStore.memory("peer-a")
    peer.add_peer(api.store.node_id)
    peer.apply_event(incident_event())
    payload = peer.sync_payload_for(api.store.node_id)
    assert payload is not None
    return {
        "content": payload,
        "headers": {"X-Notifyd-Peer": "peer-a", "content-type": "application/msgpack"},
    }


ROUTES: dict[str, tuple[str, Callable[[Api, httpx.Client], Request]]] = {
    "publish": ("publish", lambda api, h: ("POST", "/v1/events", {"json": incident_event()})),
    "event": ("operate", lambda api, h: ("GET", f"/v1/events/{_event(h)}", {})),
    "deliveries": ("operate", lambda api, h: ("GET", f"/v1/events/{_event(h)}/deliveries", {})),
    "redrive": ("operate", lambda api, h: ("POST", f"/v1/events/{_event(h)}/redrive", {})),
    "add subscriber": (
        "admin",
        lambda api, h: (
            "POST",
            "/v1/pages/acme/subscribers",
            {"json": {"channel": "sms", "target": "+14155550100"}},
        ),
    ),
    "import": (
        "admin",
        lambda api, h: (
            "POST",
            "/v1/pages/acme/subscribers:import",
            {"content": json.dumps({"channel": "sms", "target": "+14155550101"}) + "\n"},
        ),
    ),
    "list subscribers": ("admin", lambda api, h: ("GET", "/v1/pages/acme/subscribers", {})),
    "remove subscriber": (
        "admin",
        lambda api, h: ("DELETE", f"/v1/pages/acme/subscribers/{_subscriber(h)}", {}),
    ),
    "reactivate subscriber": (
        "admin",
        lambda api, h: ("POST", f"/v1/pages/acme/subscribers/{_subscriber(h)}/reactivate", {}),
    ),
    "subscriber deliveries": (
        "operate",
        lambda api, h: ("GET", f"/v1/subscribers/{_subscriber(h)}/deliveries", {}),
    ),
    "page status": ("operate", lambda api, h: ("GET", "/v1/pages/acme/status", {})),
    "queues": ("operate", lambda api, h: ("GET", "/v1/queues", {})),
    "dashboard": ("operate", lambda api, h: ("GET", "/dashboard", {})),
    "sync": ("sync", lambda api, h: ("POST", "/v1/sync", _sync_payload(api))),
}
#: A key that lacks each scope.
WRONG_KEY = {"publish": "operate", "operate": "publish", "admin": "operate", "sync": "admin"}


@pytest.fixture
def api_with_store(shared_api: Api) -> Api:
    return shared_api


def _send(api: Api, key: str | None, request: Request) -> httpx.Response:
    method, path, kwargs = request
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    with httpx.Client(base_url=api.url, timeout=15) as http:
        return http.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_route_without_a_key_is_401_with_a_bearer_challenge(api_with_store: Api, route: str):
    _, build = ROUTES[route]
    with api_with_store.client("all") as admin:
        r = _send(api_with_store, None, build(api_with_store, admin))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_route_with_an_unknown_key_is_401(api_with_store: Api, route: str):
    _, build = ROUTES[route]
    with api_with_store.client("all") as admin:
        assert _send(api_with_store, "not-a-key", build(api_with_store, admin)).status_code == 401


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_route_with_a_key_lacking_its_scope_is_403(api_with_store: Api, route: str):
    scope, build = ROUTES[route]
    with api_with_store.client("all") as admin:
        r = _send(api_with_store, KEYS[WRONG_KEY[scope]], build(api_with_store, admin))
    assert r.status_code == 403
    assert scope in r.json()["detail"]


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_route_with_a_key_holding_its_scope_succeeds(api_with_store: Api, route: str):
    scope, build = ROUTES[route]
    with api_with_store.client("all") as admin:
        r = _send(api_with_store, KEYS[scope], build(api_with_store, admin))
    assert 200 <= r.status_code < 300, r.text


def test_an_admin_key_may_also_operate(api: Api, http: httpx.Client):
    event_id = _event(http)
    with api.client("admin") as admin:
        assert admin.get(f"/v1/events/{event_id}").status_code == 200
        assert admin.post("/v1/events", json=incident_event()).status_code == 403


def test_keys_created_in_redis_work_and_are_stored_only_as_hashes(api: Api):
    store = KeyStore(api.runtime.client, api.runtime.settings.namespace)
    key = store.create({"operate"}, name="grafana")
    raw = api.runtime.client.hgetall(f"{api.runtime.settings.namespace}:apikeys")
    assert key.encode() not in b"".join(k + v for k, v in raw.items())
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/v1/queues").status_code == 200
        assert http.post("/v1/events", json=incident_event()).status_code == 403
    store.revoke(store.stored()[0].digest[:12])
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/v1/queues").status_code == 401


def test_open_routes_need_no_key(api: Api):
    with httpx.Client(base_url=api.url) as http:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            assert http.get(path).status_code == 200, path


def test_wrong_keys_from_one_address_are_throttled_with_retry_after_and_others_are_not(start_api):
    api = start_api(auth_failure_limit="3/minute")

    def client(address: str, key: str) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(
            base_url=api.url, transport=transport, headers={"Authorization": f"Bearer {key}"}, timeout=15
        )

    with client("127.0.0.2", "guess-0123456789abcdefghijklmnopqrstu") as guesser:
        assert [guesser.get("/v1/queues").status_code for _ in range(3)] == [401, 401, 401]
        throttled = guesser.get("/v1/queues")
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        assert throttled.headers["content-type"] == "application/problem+json"
    # While throttled, that address is refused even with a right key; another address is not.
    with client("127.0.0.2", KEYS["operate"]) as same:
        assert same.get("/v1/queues").status_code == 429
    with client("127.0.0.3", KEYS["operate"]) as other:
        assert other.get("/v1/queues").status_code == 200


def test_a_missing_key_is_not_counted_as_a_guess(start_api):
    api = start_api(auth_failure_limit="2/minute")
    with httpx.Client(base_url=api.url, timeout=15) as anonymous:
        assert {anonymous.get("/v1/queues").status_code for _ in range(5)} == {401}
    with api.client("operate") as http:
        assert http.get("/v1/queues").status_code == 200
