"""Shared fixtures: real Redis (the machine's, or the embedded server), namespaced per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from tests.support.env import PREFIX, SUITE_DEFAULTS
from tests.support.sink import Sink, SinkProcess
from tests.support.wait import wait_until  # noqa: F401 - tests of other branches still import it from here

#: The machine's Redis, on a database number notifyd's tests own.
MACHINE_REDIS = "redis://127.0.0.1:6379/9"
#: Where the tests' Redis is: ``TEST_REDIS_URL``, outside the app's prefix. The old name
#: ``NOTIFYD_TEST_REDIS_URL`` still works; both are read before any test clears NOTIFYD_*.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get("NOTIFYD_TEST_REDIS_URL")


# Nothing under NOTIFYD_* from the developer's shell or the CI reaches the suite: cleared here,
# before any fixture builds settings, and again around each test; the suite's own defaults
# (tests/support/env.py) take their place.
for _name in [k for k in os.environ if k.startswith(PREFIX)]:
    del os.environ[_name]
os.environ.update(SUITE_DEFAULTS)


@pytest.fixture(autouse=True)
def _no_notifyd_variables_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process settings see only what the test sets: no NOTIFYD_* but the suite's defaults."""
    for name in [k for k in os.environ if k.startswith(PREFIX) and k not in SUITE_DEFAULTS]:
        monkeypatch.delenv(name)
    for name, value in SUITE_DEFAULTS.items():
        monkeypatch.setenv(name, value)


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = TEST_REDIS_URL or MACHINE_REDIS
    if _answers(url):
        yield url
        return
    # No Redis on this machine: tests run against the embedded server, as `notifyd dev` does.
    server = EmbeddedRedis(tmp_path_factory.mktemp("embedded"))
    yield server.start()
    server.stop()


@pytest.fixture
def namespace() -> str:
    return f"nt{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_settings(redis_url: str, namespace: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "namespace": namespace,
            "data_dir": tmp_path / "var",
            "allow_private_targets": True,
            "poll_timeout_ms": 20,
            "shard_size": 50,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def runtimes(redis_url: str, namespace: str) -> Iterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for rt in made:
        rt.close()
    client = redis.Redis.from_url(redis_url)
    # Flush only what this test owns: its namespace.
    for key in client.scan_iter(match=f"{namespace}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def runtime(make_settings: Callable[..., Settings], runtimes: list[Runtime]) -> Callable[..., Runtime]:
    def make(**overrides: Any) -> Runtime:
        rt = Runtime.start(make_settings(**overrides))
        runtimes.append(rt)
        return rt

    return make


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def sink_process() -> Iterator[SinkProcess]:
    """The sink in a process of its own: real HTTP that shares no interpreter with the test."""
    with SinkProcess() as s:
        yield s


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replace the email and SMS adapters with an instant recording channel for this test."""
    from channels import registry
    from tests.support.recording import Recorder

    rec = Recorder()
    for channel in ("email", "sms"):
        monkeypatch.setitem(registry._FACTORIES, channel, rec.factory(channel))
    return rec


@pytest.fixture
def start_worker() -> Iterator[Callable[..., Any]]:
    from notifyd.runtime.worker import InProcessWorker

    started: list[InProcessWorker] = []

    def start(rt: Runtime, **kwargs: Any) -> InProcessWorker:
        kwargs.setdefault("threads", 4)
        w = InProcessWorker.start(rt, **kwargs)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def fault_proxy(redis_url: str) -> Iterator[Any]:
    """A TCP proxy in front of the test Redis that drops or stalls connections on cue."""
    from urllib.parse import urlparse

    from tests.support.faults import FaultProxy

    parsed = urlparse(redis_url)
    if parsed.scheme != "redis":
        pytest.fail(f"the fault proxy needs a TCP Redis URL, got {parsed.scheme}://")
    proxy = FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or 6379).start()
    proxy.db = int((parsed.path or "/0").lstrip("/") or 0)
    yield proxy
    proxy.stop()
