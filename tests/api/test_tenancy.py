"""Keys limited to pages: every route is checked, by how the route table (tests/api/scopes.py)
says it names a page.

A key for page ``tenant-a`` acting on page ``tenant-b`` gets a 403 where the request names
the page (path or body), and a 404 where it names an event or subscriber of that page (a 403
would confirm that the id exists). Lists hold only the key's pages. The table is checked against
the app's own routes (tests/api/test_auth.py), so a new route cannot escape these tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from notifyd.api.keystore import Grant, KeySpecError, KeyStore, hash_key, parse_env_keys
from notifyd.api.server import start_in_thread
from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from notifyd.state import quarantine
from notifyd.store import StatusStore
from tests.api.conftest import API_KEYS, KEYS, Api
from tests.api.scopes import ROUTES, Names, Setup, routes_naming
from tests.support.events import incident_event, ref

A, B = "tenant-a", "tenant-b"
#: publish, operate and admin, limited to page A, every lane.
KEY_A = "tenant-a-key-0123456789abcdefghijklmnop"
#: The same without a lane cap: publishes normal and low only.
KEY_A_CAPLESS = "tenant-a-capless-0123456789abcdefghijkl"
#: A sync key that speaks for the peer region "peer-a" only.
SYNC_A = "sync-for-peer-a-0123456789abcdefghijklm"
TENANT_KEYS = f"{KEY_A}:publish+operate+admin@{A}/critical,{KEY_A_CAPLESS}:publish@{A},{SYNC_A}:sync@peer-a"

Request = tuple[str, str, dict[str, Any]]


class Fixture(Setup):
    """A server with data on both pages; the route table's builders make requests that name a page."""

    def __init__(self, api: Api) -> None:
        super().__init__(api)
        self.events = {page: self.event(page) for page in (A, B)}
        self.subscribers = {page: self.subscriber(page) for page in (A, B)}

    def request(self, route: tuple[str, str], page: str) -> Request:
        """The route table's valid request for ``route``, naming ``page``."""
        path, kwargs = ROUTES[route].build(self, page)
        return route[0], path, kwargs

    def send(self, key: str, request: Request) -> httpx.Response:
        method, path, kwargs = request
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=self.api.url, timeout=15) as http:
            return http.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def fx(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    namespace = f"nt{uuid.uuid4().hex[:10]}"
    settings = Settings(
        redis_url=redis_url,
        namespace=namespace,
        data_dir=tmp_path_factory.mktemp("tenancy") / "var",
        allow_private_targets=True,
        api_keys=f"{API_KEYS},{TENANT_KEYS}",
    )
    rt = Runtime.start(settings)
    store = StatusStore.memory("api-node")
    handle = start_in_thread(rt, store, host="127.0.0.1", port=0, announce=False)
    fixture = Fixture(Api(rt, handle, store))
    yield fixture
    fixture.admin.close()
    handle.stop()
    for key in rt.client.scan_iter(match=f"{namespace}*", count=1000):
        rt.client.delete(key)
    rt.close()


@pytest.mark.parametrize("route", routes_naming(Names.PAGE), ids=" ".join)
def test_a_page_key_naming_another_page_is_403(fx: Fixture, route: tuple[str, str]):
    r = fx.send(KEY_A, fx.request(route, B))
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert B in r.json()["detail"]


@pytest.mark.parametrize("route", routes_naming(Names.PAGE), ids=" ".join)
def test_a_page_key_naming_its_own_page_succeeds(fx: Fixture, route: tuple[str, str]):
    r = fx.send(KEY_A, fx.request(route, A))
    assert 200 <= r.status_code < 300, r.text


@pytest.mark.parametrize("route", routes_naming(Names.ID), ids=" ".join)
def test_a_page_key_naming_an_id_of_another_page_is_404_like_an_unknown_id(
    fx: Fixture, route: tuple[str, str]
):
    r = fx.send(KEY_A, fx.request(route, B))
    assert r.status_code == 404, r.text
    assert "tenant-b" not in r.text
    # The all-pages key still reaches it.
    assert 200 <= fx.send(KEYS["all"], fx.request(route, B)).status_code < 300


@pytest.mark.parametrize("route", routes_naming(Names.ID), ids=" ".join)
def test_a_page_key_naming_an_id_of_its_own_page_succeeds(fx: Fixture, route: tuple[str, str]):
    r = fx.send(KEY_A, fx.request(route, A))
    assert 200 <= r.status_code < 300, r.text


def test_a_refused_publish_to_another_page_enqueues_nothing(fx: Fixture):
    event = incident_event(page=B)
    assert fx.send(KEY_A, ("POST", "/v1/events", {"json": event})).status_code == 403
    assert fx.api.runtime.tracker.summary(ref(event)) is None


def test_queue_view_lists_only_the_key_s_pages(fx: Fixture):
    # No worker runs here: the events are listed from their acceptance, while they wait.
    everything = fx.send(KEYS["all"], ("GET", "/v1/queues", {})).json()["recent_events"]
    assert {e["page_id"] for e in everything} >= {A, B}
    mine = fx.send(KEY_A, ("GET", "/v1/queues", {})).json()["recent_events"]
    assert mine and {e["page_id"] for e in mine} == {A}


def test_quarantined_endpoints_and_circuits_show_only_the_key_s_pages(fx: Fixture):
    rt = fx.api.runtime
    subs = [rt.subscribers.get(page, fx.subscribers[page]) for page in (A, B)]
    for sub in subs:
        assert sub is not None
        rt.subscribers.disable(sub.page_id, sub.seq, quarantine.REASON)
    quarantine.note(rt.client, rt.keys, [s for s in subs if s is not None], at=1.0)
    everything = fx.send(KEYS["all"], ("GET", "/v1/stats/endpoints", {})).json()
    assert {q["page_id"] for q in everything["quarantined"]} == {A, B}
    mine = fx.send(KEY_A, ("GET", "/v1/stats/endpoints", {})).json()
    assert {q["page_id"] for q in mine["quarantined"]} == {A}
    assert mine["circuits"] == []


@pytest.mark.parametrize("route", routes_naming(Names.NOTHING), ids=" ".join)
def test_a_page_key_may_read_the_filtered_views(fx: Fixture, route: tuple[str, str]):
    assert fx.send(KEY_A, fx.request(route, A)).status_code == 200


@pytest.mark.parametrize("route", routes_naming(Names.ALL_PAGES), ids=" ".join)
def test_a_page_key_cannot_reach_the_all_pages_routes(fx: Fixture, route: tuple[str, str]):
    r = fx.send(KEY_A, fx.request(route, A))
    assert r.status_code == 403, r.text
    with pytest.raises(KeySpecError, match="every page"):
        parse_env_keys("some-sync-key-0123456789abcdefghijk:sync+operate@tenant-a")


def test_a_publish_key_without_a_lane_cap_publishes_normal_and_low_only(fx: Fixture):
    critical = incident_event(page=A, priority="critical")
    r = fx.send(KEY_A_CAPLESS, ("POST", "/v1/events", {"json": critical}))
    assert r.status_code == 403
    assert "'normal'" in r.json()["detail"] and "max-priority" in r.json()["detail"]
    assert fx.api.runtime.tracker.summary(ref(critical)) is None
    # The priority that comes from the impact counts too: a major incident is high.
    assert fx.send(KEY_A_CAPLESS, ("POST", "/v1/events", {"json": incident_event(page=A)})).status_code == 403
    for priority in ("normal", "low"):
        ok = fx.send(
            KEY_A_CAPLESS, ("POST", "/v1/events", {"json": incident_event(page=A, priority=priority)})
        )
        assert ok.status_code == 202, ok.text


def test_a_key_with_max_priority_high_may_not_publish_critical(fx: Fixture):
    store = KeyStore(fx.api.runtime.client, fx.api.runtime.settings.namespace)
    key = store.create({"publish"}, pages=[A], max_priority="high")
    assert fx.send(key, ("POST", "/v1/events", {"json": incident_event(page=A)})).status_code == 202
    refused = fx.send(key, ("POST", "/v1/events", {"json": incident_event(page=A, priority="critical")}))
    assert refused.status_code == 403 and "'high'" in refused.json()["detail"]
    assert fx.send(key, ("POST", "/v1/events", {"json": incident_event(page=B)})).status_code == 403


def test_stored_page_keys_keep_their_pages_and_cap(fx: Fixture):
    store = KeyStore(fx.api.runtime.client, fx.api.runtime.settings.namespace)
    key = store.create({"operate"}, name="grafana-a", pages=[A, "other"])
    assert store.grant_for(key) == Grant(frozenset({"operate"}), frozenset({A, "other"}), None)
    listed = [k.public() for k in store.stored() if k.name == "grafana-a"]
    assert listed[0]["pages"] == sorted([A, "other"])
    assert fx.send(key, ("GET", f"/v1/pages/{B}/status", {})).status_code == 403
    assert fx.send(key, ("GET", f"/v1/pages/{A}/status", {})).status_code == 200


def test_env_keys_parse_pages_and_priority():
    parsed = parse_env_keys(
        "k:e:y-one-0123456789abcdefghijklmnop:publish+operate@acme+ns:beta/high, "
        "other-key-0123456789abcdefghijklmnop:admin"
    )
    grants = sorted(parsed.values(), key=lambda g: sorted(g.scopes))
    assert grants[0] == Grant(frozenset({"admin"}))
    assert grants[1] == Grant(frozenset({"publish", "operate"}), frozenset({"acme", "ns:beta"}), "high")
    with pytest.raises(KeySpecError) as bad:
        parse_env_keys("supersecret-0123456789abcdefghijklmnop:publish/urgent")
    assert "supersecret" not in str(bad.value) and "urgent" in str(bad.value)


def test_keys_create_with_page_and_max_priority_makes_a_key_refused_on_another_page(fx: Fixture):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")},
        "NOTIFYD_REDIS_URL": fx.api.runtime.url,
        "NOTIFYD_NAMESPACE": fx.api.runtime.settings.namespace,
    }
    made = subprocess.run(
        [sys.executable, "-m", "notifyd", "keys", "create", "--scope", "publish", "--page", A]
        + ["--max-priority", "high"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip()
    assert f"page(s) {A}" in made.stderr and "up to priority high" in made.stderr
    assert fx.send(key, ("POST", "/v1/events", {"json": incident_event(page=A)})).status_code == 202
    assert fx.send(key, ("POST", "/v1/events", {"json": incident_event(page=B)})).status_code == 403


def _sync_from(fx: Fixture, peer: str) -> Request:
    return ("POST", "/v1/sync", fx.sync_payload(peer))


def test_a_sync_key_bound_to_a_peer_cannot_speak_for_another(fx: Fixture):
    assert parse_env_keys(f"{SYNC_A}:sync@peer-a")[hash_key(SYNC_A)].peer == "peer-a"
    with pytest.raises(KeySpecError, match="one peer"):
        parse_env_keys(f"{SYNC_A}:sync@peer-a+peer-b")
    impostor = fx.send(SYNC_A, _sync_from(fx, "peer-b"))
    assert impostor.status_code == 403 and "another peer" in impostor.json()["detail"]
    assert fx.send(SYNC_A, _sync_from(fx, "peer-a")).status_code == 200


def test_a_stored_sync_key_bound_to_a_peer_is_refused_for_another(fx: Fixture):
    store = KeyStore(fx.api.runtime.client, fx.api.runtime.settings.namespace)
    key = store.create({"sync"}, name="eu-sync", peer="peer-eu")
    with pytest.raises(KeySpecError, match="sync scope alone"):
        store.create({"sync", "operate"}, peer="peer-eu")
    assert fx.send(key, _sync_from(fx, "peer-us")).status_code == 403
    assert fx.send(key, _sync_from(fx, "peer-eu")).status_code == 200
