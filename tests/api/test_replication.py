"""Status-store replicas kept in step: the processes of one region through Redis, regions over /v1/sync."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx

from notifyd.runtime.replication import start_replication
from notifyd.runtime.settings import Settings
from notifyd.runtime.worker import InProcessWorker, open_store
from notifyd.store import StatusStore
from tests.api.conftest import KEYS, Api
from tests.support.events import component_event, incident_event, ref
from tests.support.wait import wait_done, wait_until


def _status(api: Api, page: str = "acme") -> dict[str, Any]:
    r = httpx.get(f"{api.url}/v1/pages/{page}/status", headers={"Authorization": f"Bearer {KEYS['all']}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_api_process_sees_what_a_separate_worker_ingested(
    start_api: Callable[..., Api], make_settings: Callable[..., Settings], recorder: Any
) -> None:
    # As `notifyd serve` and `notifyd worker` run it: two processes, two replicas, one Redis.
    settings = make_settings(node_id="eu")
    worker_store = open_store(settings, "worker")
    api_store = open_store(settings, "api")
    api = start_api(store=api_store, node_id="eu")
    rt = api.runtime
    started = [
        start_replication(settings, rt.url, worker_store, with_regions=False),
        start_replication(settings, rt.url, api_store, with_regions=True),
    ]
    rt.subscribers.add("acme", {"channel": "email", "target": "sre@example.com"})
    worker = InProcessWorker.start(rt, threads=2, store=worker_store)
    try:
        event = incident_event()
        assert rt.publisher.publish(event).status == "accepted"
        assert wait_until(lambda: bool(_status(api)["open_incidents"]), timeout=10), _status(api)
        incident = _status(api)["open_incidents"][0]
        assert incident["title"] == "Database outage"
        assert [t["event_id"] for t in incident["timeline"]] == [event["event_id"]]
        assert _status(api) == worker_store.page_status("acme")
    finally:
        worker.stop()
        for replication in started:
            assert replication is not None
            replication.stop()
        worker_store.close()
        api_store.close()


def test_two_regions_converge_over_their_sync_endpoints(
    start_api: Callable[..., Api], make_settings: Callable[..., Settings], namespace: str
) -> None:
    stores = {name: StatusStore.memory(f"{name}-api0") for name in ("eu", "us")}
    apis = {
        name: start_api(store=stores[name], node_id=name, namespace=f"{namespace}-{name}") for name in stores
    }
    started = []
    for name, other in (("eu", "us"), ("us", "eu")):
        settings = make_settings(
            node_id=name,
            namespace=f"{namespace}-{name}",
            peers=f"{other}={apis[other].url}",
            sync_key=KEYS["sync"],
            sync_interval_ms=50,
        )
        started.append(start_replication(settings, apis[name].runtime.url, stores[name], with_regions=True))
    try:
        stores["eu"].apply_event(component_event(component="db", status="major_outage"))
        stores["us"].apply_event(incident_event(page="acme"))
        assert wait_until(lambda: _status(apis["eu"]) == _status(apis["us"]), timeout=10)
        merged = _status(apis["us"])
        assert [c["status"] for c in merged["components"]] == ["major_outage"]
        assert len(merged["open_incidents"]) == 1
        # A later write in one region overrides the earlier one everywhere.
        stores["us"].apply_event(component_event(component="db", status="operational"))
        assert wait_until(
            lambda: [c["status"] for c in _status(apis["eu"])["components"]] == ["operational"], timeout=10
        )
    finally:
        for replication in started:
            assert replication is not None
            replication.stop()


def test_a_peer_refuses_sync_without_the_sync_scope(
    start_api: Callable[..., Api], make_settings: Callable[..., Settings], namespace: str, caplog: Any
) -> None:
    store = StatusStore.memory("eu-api0")
    peer = start_api(store=StatusStore.memory("us-api0"), node_id="us", namespace=f"{namespace}-us")
    settings = make_settings(node_id="eu", peers=f"us={peer.url}", sync_key=KEYS["publish"])
    replication = start_replication(settings, peer.runtime.url, store, with_regions=True)
    assert replication is not None and replication.regions is not None
    try:
        store.apply_event(component_event())
        replication.regions.tick()
        assert replication.regions.learned == {}
        assert "sync with peer region us" in caplog.text and "HTTP 403" in caplog.text
        assert KEYS["publish"] not in caplog.text
        assert _status(peer)["components"] == []
    finally:
        replication.stop()


def test_a_silent_peer_region_does_not_hold_up_the_replicas_of_this_region(
    make_settings: Callable[..., Settings], runtimes: list[Any]
) -> None:
    # Accepts connections and never answers: each try costs the peer timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    settings = make_settings(
        node_id="eu", peers=f"us=http://127.0.0.1:{silent.getsockname()[1]}", sync_interval_ms=50
    )
    assert settings.redis_url is not None
    api_store, worker_store = StatusStore.memory("eu-api0"), StatusStore.memory("eu-worker0")
    started = [
        start_replication(settings, settings.redis_url, api_store, with_regions=True),
        start_replication(settings, settings.redis_url, worker_store, with_regions=False),
    ]
    try:
        for n in range(3):
            worker_store.apply_event(component_event(component=f"c{n}"))
            assert wait_until(
                lambda: api_store.page_status("acme") == worker_store.page_status("acme"), timeout=2
            )
    finally:
        for replication in started:
            replication.stop()
        silent.close()


def test_two_regions_end_to_end_region_b_delivers_nothing_for_what_region_a_took_nor_for_stale_events(
    start_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    namespace: str,
    sink: Any,
    tmp_path: Any,
) -> None:
    from datetime import UTC, datetime, timedelta

    from notifyd.ids import delivery_id

    regions = ("eu", "us")
    base = {r: make_settings(node_id=r, namespace=f"{namespace}-{r}", data_dir=tmp_path / r) for r in regions}
    workers_store = {r: open_store(base[r], "worker") for r in regions}
    api_store = {r: open_store(base[r], "api") for r in regions}
    apis = {
        r: start_api(store=api_store[r], node_id=r, namespace=f"{namespace}-{r}", data_dir=tmp_path / r)
        for r in regions
    }
    started, workers = [], []
    for r, other in (("eu", "us"), ("us", "eu")):
        settings = make_settings(
            node_id=r,
            namespace=f"{namespace}-{r}",
            data_dir=tmp_path / r,
            peers=f"{other}={apis[other].url}",
            sync_key=KEYS["sync"],
            sync_interval_ms=50,
        )
        url = apis[r].runtime.url
        started.append(start_replication(settings, url, workers_store[r], with_regions=False))
        started.append(start_replication(settings, url, api_store[r], with_regions=True))
    subs = {
        r: apis[r]
        .runtime.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/{r}"})
        .subscriber
        for r in regions
    }
    try:
        for r in regions:
            workers.append(InProcessWorker.start(apis[r].runtime, threads=2, store=workers_store[r]))
        eu, us = apis["eu"].runtime, apis["us"].runtime
        # Region A (eu) takes the event and delivers it.
        taken = incident_event()
        assert eu.publisher.publish(taken).status == "accepted"
        assert wait_done(eu, taken["event_id"])["counts"]["delivered"] == 1
        # Its seen-set reaches region B's worker; B gets the same event (a publisher retrying there).
        assert wait_until(lambda: workers_store["us"].seen(taken["page_id"], taken["event_id"]), timeout=15)
        assert us.publisher.publish(taken).status == "accepted"
        summary = wait_done(us, taken["event_id"])
        assert summary["counts"]["planned"] == 0
        assert us.tracker.event_hash(ref(taken))["filtered"].startswith("replicated_duplicate")
        # A newer status taken in A; an older one arriving at B afterwards is stale there.
        now = datetime.now(UTC)
        newer = component_event(component="db", status="major_outage", occurred_at=_iso(now))
        older = component_event(
            component="db", status="operational", occurred_at=_iso(now - timedelta(minutes=1))
        )
        assert eu.publisher.publish(newer).status == "accepted"
        wait_done(eu, newer["event_id"])
        assert wait_until(lambda: workers_store["us"].seen(newer["page_id"], newer["event_id"]), timeout=15)
        assert us.publisher.publish(older).status == "accepted"
        assert wait_done(us, older["event_id"])["counts"]["planned"] == 0
        assert us.tracker.event_hash(ref(older))["filtered"].startswith("stale")
        # The control: region B does deliver an event nobody took before.
        fresh = incident_event()
        assert us.publisher.publish(fresh).status == "accepted"
        assert wait_done(us, fresh["event_id"])["counts"]["delivered"] == 1
    finally:
        for worker in workers:
            worker.stop()
        for replication in started:
            assert replication is not None
            replication.stop()
        for store in (*workers_store.values(), *api_store.values()):
            store.close()
    seen_by_us = {r.headers["webhook-id"] for r in sink.on("/us")}
    assert seen_by_us == {delivery_id(ref(fresh), subs["us"].id, "webhook")}
    assert len(sink.on("/eu")) == 2  # the taken event and the newer status


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


def test_a_peer_region_catches_up_on_a_state_bigger_than_one_part_over_its_sync_endpoint(
    start_api: Callable[..., Api], make_settings: Callable[..., Settings], namespace: str
) -> None:
    eu = StatusStore.memory("eu-api0", sync_part_bytes=16 * 1024)
    for i in range(120):
        eu.apply_event(incident_event(f"page-{i % 9}", incident_id=f"inc-{i}", message="m" * 1000 + str(i)))
    us = start_api(store=StatusStore.memory("us-api0"), node_id="us", namespace=f"{namespace}-us")
    settings = make_settings(node_id="eu", peers=f"us={us.url}", sync_key=KEYS["sync"], sync_interval_ms=50)
    refused_before = _refused()
    replication = start_replication(settings, us.runtime.url, eu, with_regions=True)
    try:
        assert wait_until(lambda: eu._buffer.acks.get("us-api0") == eu._buffer.seq, timeout=30)
        assert us.store.export_state() == eu.export_state()
        assert not eu._buffer.transfers and set(eu._buffer.acks) == {"us-api0"}
        assert _refused() == refused_before
        assert all(_status(us, f"page-{p}") == eu.page_status(f"page-{p}") for p in range(9))
    finally:
        replication.stop()


def test_a_part_the_peer_region_refuses_is_counted_and_logged(
    start_api: Callable[..., Api], make_settings: Callable[..., Settings], namespace: str, caplog: Any
) -> None:
    import time

    # A clock an hour ahead of the peer's: the peer answers each part with 409.
    eu = StatusStore.memory("eu-api0", sync_part_bytes=8 * 1024, clock=lambda: time.time() + 3600)
    for i in range(40):
        eu.apply_event(incident_event(incident_id=f"inc-{i}", message="m" * 1000 + str(i)))
    us = start_api(store=StatusStore.memory("us-api0"), node_id="us", namespace=f"{namespace}-us")
    settings = make_settings(node_id="eu", peers=f"us={us.url}", sync_key=KEYS["sync"])
    replication = start_replication(settings, us.runtime.url, eu, with_regions=True)
    assert replication.regions is not None
    try:
        before = _refused(kind="part", reason="409")
        replication.regions.tick()
        # The replication's own loop may have sent a round too; each refused part counts once.
        assert _refused(kind="part", reason="409") >= before + 1
        assert "HTTP 409 for a sync part of" in caplog.text
        assert us.store.stats["incidents"] == 0
    finally:
        replication.stop()


def _refused(**labels: str) -> float:
    from prometheus_client import REGISTRY

    if labels:
        return REGISTRY.get_sample_value("notifyd_sync_refused_by_peer_total", labels) or 0.0
    return sum(
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "notifyd_sync_refused_by_peer"
        for s in metric.samples
        if s.name.endswith("_total")
    )
