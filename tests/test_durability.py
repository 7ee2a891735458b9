"""Accepted means durable, by policy (NOTIFYD_DURABILITY), against servers these tests start."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from notifyd.api.server import start_in_thread
from notifyd.cli import main
from notifyd.runtime.durability import DurabilityUnavailable, NotDurable
from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from tests.api.conftest import API_KEYS, KEYS
from tests.support.events import incident_event, ref
from tests.support.servers import Server, redis_server, valkey


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*config: str, kind: Callable[..., Server] = valkey) -> Server:
        server = kind(tmp_path / f"server{len(started)}", *config).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def durable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """A runtime on ``server`` under a durability mode (the environment wins over Settings kwargs)."""
    made: list[Runtime] = []

    def make(server: Server, mode: str, timeout_ms: int = 300) -> Runtime:
        monkeypatch.setenv("NOTIFYD_DURABILITY", mode)
        monkeypatch.setenv("NOTIFYD_DURABILITY_TIMEOUT_MS", str(timeout_ms))
        settings = Settings(redis_url=server.url, namespace="dur", data_dir=tmp_path / "var")
        rt = Runtime.start(settings)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


def _queued(rt: Runtime) -> int:
    return sum(int(rt.client.hlen(rt.keys.queue_messages(rt.keys.queue_name(lane)))) for lane in ("high",))


def _not_durable(policy: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value("notifyd_publish_not_durable_total", {"policy": policy, "reason": reason})
        or 0.0
    )


# -- start-up --------------------------------------------------------------------------------------


def test_fsync_policy_is_met_by_a_server_with_aof_and_waitaof(servers, durable):
    rt = durable(servers("appendonly yes", "appendfsync everysec"), "fsync")
    assert "WAITAOF" in rt.require_durability()
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    aof = b"".join(p.read_bytes() for p in Path(rt.settings.data_dir).parent.rglob("*.aof") if p.is_file())
    assert event["event_id"].encode() in aof


def test_fsync_policy_refuses_to_start_on_a_server_without_aof(servers, durable):
    rt = durable(servers("appendonly no"), "fsync")
    with pytest.raises(DurabilityUnavailable, match="appendonly off"):
        rt.require_durability()


def test_fsync_policy_refuses_to_start_on_a_server_that_never_fsyncs(servers, durable):
    rt = durable(servers("appendonly yes", "appendfsync no"), "fsync")
    with pytest.raises(DurabilityUnavailable, match="appendfsync no"):
        rt.require_durability()


def test_fsync_policy_without_waitaof_needs_appendfsync_always(servers, durable):
    everysec = durable(servers("appendonly yes", "appendfsync everysec", kind=redis_server), "fsync")
    with pytest.raises(DurabilityUnavailable, match="WAITAOF"):
        everysec.require_durability()
    always = durable(servers("appendonly yes", "appendfsync always", kind=redis_server), "fsync")
    assert "appendfsync always" in always.require_durability()
    assert always.publisher.publish(incident_event()).status == "accepted"


def test_renamed_waitaof_refuses_start_and_refuses_publishes_instead_of_skipping_the_wait(servers, durable):
    rt = durable(servers("appendonly yes", "appendfsync everysec", 'rename-command WAITAOF ""'), "fsync")
    with pytest.raises(DurabilityUnavailable, match="WAITAOF"):
        rt.require_durability()
    # A process that publishes without the start-up check still never gives a silent 202.
    before = _not_durable("fsync", "refused")
    for _ in range(2):
        with pytest.raises(NotDurable) as caught:
            rt.publisher.publish(incident_event())
        assert caught.value.written == "event"
    assert _not_durable("fsync", "refused") == before + 2


def test_replica_policy_needs_a_connected_replica(servers, durable):
    primary = servers("appendonly yes", "appendfsync everysec")
    rt = durable(primary, "replica", timeout_ms=2000)
    with pytest.raises(DurabilityUnavailable, match="replica"):
        rt.require_durability()
    servers("appendonly no", f"replicaof 127.0.0.1 {primary.port}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            how = rt.require_durability()
            break
        except DurabilityUnavailable:
            time.sleep(0.05)  # the replica is still in its first sync
    assert "WAIT 1" in how
    assert rt.publisher.publish(incident_event()).status == "accepted"


def test_notifyd_serve_and_worker_refuse_to_start_with_one_line_when_redis_cannot_meet_the_policy(
    servers, monkeypatch, tmp_path, capsys
):
    server = servers("appendonly no")
    monkeypatch.setenv("NOTIFYD_REDIS_URL", server.url)
    monkeypatch.setenv("NOTIFYD_DURABILITY", "fsync")
    monkeypatch.setenv("NOTIFYD_DATA_DIR", str(tmp_path / "var"))
    for command in (["serve", "--port", "0"], ["worker", "--threads", "1"]):
        assert main(command) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("notifyd: refusing to start: NOTIFYD_DURABILITY=fsync"), err
        assert len(err.splitlines()) == 1


def test_none_policy_starts_on_a_server_without_aof(servers, durable):
    rt = durable(servers("appendonly no"), "none")
    rt.require_durability()
    assert rt.publisher.publish(incident_event()).status == "accepted"


# -- each publish ----------------------------------------------------------------------------------


def test_publish_that_redis_does_not_fsync_in_time_is_refused_saying_the_event_was_written(servers, durable):
    server = servers("appendonly yes", "appendfsync everysec")
    rt = durable(server, "fsync", timeout_ms=200)
    rt.require_durability()
    server.client().config_set("appendfsync", "no")  # after start-up: WAITAOF now answers [0, 0]
    before = _not_durable("fsync", "no_fsync")
    event = incident_event()
    with pytest.raises(NotDurable) as caught:
        rt.publisher.publish(event)
    assert caught.value.written == "event"
    assert "[0, 0]" in str(caught.value)
    assert _not_durable("fsync", "no_fsync") == before + 1
    assert rt.tracker.event_hash(ref(event)) is not None, "written means written"


def test_api_answers_503_with_what_was_written_and_readyz_reports_the_policy(servers, durable, monkeypatch):
    server = servers("appendonly yes", "appendfsync everysec")
    monkeypatch.setenv("NOTIFYD_API_KEYS", API_KEYS)
    rt = durable(server, "fsync", timeout_ms=200)
    handle = start_in_thread(rt, None, host="127.0.0.1", port=0, announce=False)
    try:
        with httpx.Client(base_url=handle.url, headers={"Authorization": f"Bearer {KEYS['all']}"}) as http:
            ready = http.get("/readyz").json()
            assert ready["durability"]["policy"] == "fsync" and ready["durability"]["met"] is True
            assert http.post("/v1/events", json=incident_event()).status_code == 202

            server.client().config_set("appendfsync", "no")
            answer = http.post("/v1/events", json=incident_event())
            assert answer.status_code == 503
            body = answer.json()
            assert body["written"] == "event"
            assert "nothing was accepted" not in body["detail"]
            assert "not confirmed durable" in body["detail"]
            unready = http.get("/readyz")
            assert unready.status_code == 503 and unready.json()["durability"]["met"] is False
            metrics = http.get("/metrics").text
            assert 'notifyd_durability_policy{policy="fsync"} 1.0' in metrics
    finally:
        handle.stop()


def test_cli_publish_exits_3_when_the_event_is_not_confirmed_durable(servers, monkeypatch, tmp_path, capsys):
    server = servers("appendonly yes", "appendfsync no")
    monkeypatch.setenv("NOTIFYD_REDIS_URL", server.url)
    monkeypatch.setenv("NOTIFYD_DURABILITY", "fsync")
    monkeypatch.setenv("NOTIFYD_DURABILITY_TIMEOUT_MS", "200")
    monkeypatch.setenv("NOTIFYD_DATA_DIR", str(tmp_path / "var"))
    path = tmp_path / "event.json"
    path.write_text(json.dumps(incident_event()))
    assert main(["publish", str(path)]) == 3
    err = capsys.readouterr().err
    assert "written: event" in err
    monkeypatch.setenv("NOTIFYD_DURABILITY", "none")
    path.write_text(json.dumps(incident_event()))
    assert main(["publish", str(path)]) == 0


def test_lost_reply_of_a_publish_is_retried_to_the_same_answer_not_a_duplicate(runtime, fault_proxy):
    rt = runtime(redis_url=fault_proxy.url)
    rule = fault_proxy.on(b"EVALSHA", "drop_after", times=1)  # the script runs; its answer is lost
    event = incident_event()
    assert rt.publisher.publish(event).status == "accepted"
    assert rule.hits == 1
    assert rt.publisher.publish(event).status == "duplicate"
    assert int(rt.client.llen(rt.keys.queue(rt.keys.queue_name("high")))) == 1


def test_publish_that_loses_redis_says_it_may_have_been_written(runtime, fault_proxy):
    rt = runtime(redis_url=fault_proxy.url)
    fault_proxy.on(b"EVALSHA", "drop_after", times=50)
    with pytest.raises(NotDurable) as caught:
        rt.publisher.publish(incident_event())
    assert caught.value.written == "unknown"


def test_publish_to_a_redis_that_is_gone_says_nothing_was_written(runtime, fault_proxy):
    rt = runtime(redis_url=fault_proxy.url)
    rt.client.ping()
    fault_proxy.stop()
    rt.client.connection_pool.disconnect()
    with pytest.raises(NotDurable) as caught:
        rt.publisher.publish(incident_event())
    assert caught.value.written == "nothing"
