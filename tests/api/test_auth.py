"""Every route of the app, with every key kind: no key or an unknown one is a 401, a key without
the route's scope a 403, a key holding it a 2xx (the route table lives in tests/api/scopes.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from notifyd.api.keystore import KeyStore
from tests.api.conftest import KEYS, Api
from tests.api.scopes import ANSWERS, KINDS, OK, OPEN, ROUTES, Names, Request, Setup, app_routes
from tests.support.events import incident_event

KEY_OF = {"none": None, "unknown": "not-a-key-anyone-issued", **KEYS}
CASES = [(route, kind) for route in ROUTES for kind in KINDS]


def _send(api: Api, key: str | None, method: str, request: Request) -> httpx.Response:
    path, kwargs = request
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    with httpx.Client(base_url=api.url, timeout=15) as http:
        return http.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def setup(shared_api: Api) -> Iterator[Setup]:
    s = Setup(shared_api)
    yield s
    s.close()


def test_the_route_table_is_exactly_the_app_s_routes(shared_api: Api):
    routes = set(app_routes(shared_api.handle.app.routes))
    # The walk must see the routers' routes, not only the app's own docs routes.
    assert ("POST", "/v1/events") in routes and len(routes) > 20, routes
    unlisted = sorted(routes - set(ROUTES) - set(OPEN))
    assert not unlisted, f"add these routes to tests/api/scopes.py (ROUTES or OPEN): {unlisted}"
    # And the table names no route the app does not have (a typo would test nothing).
    assert not (set(ROUTES) | set(OPEN)) - routes
    assert not set(ROUTES) & set(OPEN)


def test_every_scope_is_tried_with_every_key_kind_and_every_way_of_naming_a_page_is_used():
    assert {r.scope for r in ROUTES.values()} == set(ANSWERS) == {"publish", "operate", "admin", "sync"}
    assert all(set(row) == set(KINDS) for row in ANSWERS.values())
    assert {r.names for r in ROUTES.values()} == set(Names)


@pytest.mark.parametrize(("route", "kind"), CASES, ids=[f"{m} {p} {k}" for (m, p), k in CASES])
def test_each_route_answers_each_key_kind_as_the_matrix_says(shared_api: Api, setup: Setup, route, kind: str):
    method, _ = route
    entry = ROUTES[route]
    expected = ANSWERS[entry.scope][kind]
    r = _send(shared_api, KEY_OF[kind], method, entry.build(setup, "acme"))
    if expected == OK:
        assert 200 <= r.status_code < 300, r.text
        return
    assert r.status_code == expected, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if expected == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    else:
        assert entry.scope in r.json()["detail"]


def test_open_routes_need_no_key(api: Api):
    with httpx.Client(base_url=api.url) as http:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"):
            assert http.get(path).status_code == 200, path


def test_an_admin_key_may_also_operate(api: Api, http: httpx.Client):
    event_id = incident_event()["event_id"]
    http.post("/v1/events", json={**incident_event(), "event_id": event_id})
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
