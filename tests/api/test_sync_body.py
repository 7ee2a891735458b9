"""POST /v1/sync reads a peer's body in chunks, within a limit, and refuses what it cannot trust.

A body over the limit is a 413 problem while it streams (and before it is read, when its
Content-Length says so); a payload whose stamps or seen event ids reach beyond this region's
clock-skew bound or the event-id TTL (a peer pinning a status, or pre-seeding ids so that real
events look like duplicates) is refused whole. Every refusal is counted by reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from notifyd.store import StatusStore
from notifyd.store.codec import encode_state
from notifyd.store.events import event_key
from notifyd.store.hlc import pack
from notifyd.store.state import PageState, StoreState
from notifyd.store.sync import KIND_DELTA, pack_message
from notifyd.store.types import LWW
from tests.api.conftest import Api
from tests.support.events import component_event

LIMIT = 64 * 1024
PEER = {"X-Notifyd-Peer": "peer-a"}


def _refused(reason: str) -> float:
    return REGISTRY.get_sample_value("notifyd_sync_refused_total", {"reason": reason}) or 0.0


def _payload(delta: StoreState) -> bytes:
    return pack_message(KIND_DELTA, "peer-a", 1, 1, pack(int(time.time() * 1000), 0), encode_state(delta))


def _big_delta(components: int) -> StoreState:
    delta = StoreState()
    page = PageState()
    stamp = pack(int(time.time() * 1000), 0)
    for i in range(components):
        page.components[f"component-{i:05d}"] = LWW(
            stamp, "peer-a", (f"Component {i} " + "x" * 40, "major_outage")
        )
    delta.pages["big"] = page
    return delta


def _chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
def api(start_api: Callable[..., Api]) -> Api:
    return start_api(store=StatusStore.memory("api-node"), app_options={"sync_limit": LIMIT})


def test_a_streamed_body_over_the_limit_is_a_413_problem_and_merges_nothing(api: Api):
    body = _payload(_big_delta(2000))
    assert LIMIT < len(body) < 4 * LIMIT
    before = _refused("too_large")
    with api.client("sync") as http:
        # A generator body goes out chunked: no Content-Length to refuse it by up front.
        r = http.post("/v1/sync", content=_chunks(body), headers=PEER)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert str(LIMIT) in r.json()["detail"]
    assert api.store.page_status("big")["components"] == []
    assert _refused("too_large") == before + 1


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(api: Api):
    with api.client("sync") as http:
        r = http.post("/v1/sync", content=b"\x00" * (LIMIT + 1), headers=PEER)
    assert r.status_code == 413 and r.headers["connection"] == "close"


def test_a_body_within_the_limit_is_decoded_as_it_streams_and_merged(api: Api):
    body = _payload(_big_delta(100))
    assert len(body) < LIMIT
    with api.client("sync") as http:
        r = http.post("/v1/sync", content=_chunks(body, 1000), headers=PEER)
    assert r.status_code == 200 and r.headers["content-type"] == "application/msgpack"
    assert len(api.store.page_status("big")["components"]) == 100


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_payload(StoreState())[:-3], "ends inside"),
        (_payload(StoreState()) + b"\x01", "more than one"),
        (b"\xc1", "not msgpack"),
        (b"\x93\x00\x01\x02", "fields"),
    ],
    ids=["ends inside", "more than one", "not msgpack", "fields"],  # the bodies carry a clock stamp
)
def test_a_body_that_is_not_one_whole_sync_message_is_a_400_problem(api: Api, body: bytes, says: str):
    before = _refused("bad_payload")
    with api.client("sync") as http:
        r = http.post("/v1/sync", content=_chunks(body, 7), headers=PEER)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert says in r.json()["detail"]
    assert _refused("bad_payload") == before + 1


def test_a_peer_cannot_pre_seed_an_event_id_beyond_the_ttl_and_is_counted(api: Api):
    store = api.store
    delta = StoreState()
    delta.seen.items[event_key("acme", "inc-43-created")] = int(time.time()) + store.event_id_ttl_s + 3600
    before = _refused("clock_skew")
    with api.client("sync") as http:
        r = http.post("/v1/sync", content=_payload(delta), headers=PEER)
    assert r.status_code == 409 and r.json()["type"].endswith("clock-skew")
    assert not store.seen("acme", "inc-43-created")
    assert _refused("clock_skew") == before + 1
    # The real event, when it comes, is not a duplicate.
    assert not store.apply_event(component_event("acme", event_id="inc-43-created")).duplicate


def test_a_peer_cannot_pin_a_status_beyond_the_skew_bound_and_is_counted(api: Api):
    delta = StoreState()
    page = PageState()
    page.components["api"] = LWW(
        pack(int(time.time() * 1000) + 3_600_000, 0), "peer-a", ("API", "major_outage")
    )
    delta.pages["pinned"] = page
    before = _refused("clock_skew")
    with api.client("sync") as http:
        assert http.post("/v1/sync", content=_payload(delta), headers=PEER).status_code == 409
    assert api.store.page_status("pinned")["components"] == []
    assert _refused("clock_skew") == before + 1


def test_a_sync_key_speaking_for_another_peer_is_counted(start_api: Callable[..., Api]):
    key = "sync-bound-to-eu-0123456789abcdefghijkl"
    api = start_api(store=StatusStore.memory("api-node"), api_keys=f"{key}:sync@eu")
    before = _refused("wrong_peer")
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=15) as http:
        assert http.post("/v1/sync", content=_payload(StoreState()), headers=PEER).status_code == 403
    assert _refused("wrong_peer") == before + 1
