"""A real uvicorn server on a free loopback port, over the per-test Redis namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from notifyd.api.server import ApiHandle, start_in_thread
from notifyd.runtime.wiring import Runtime

#: One key per scope, plus one holding them all; tests pick the key a request should carry.
KEYS = {
    "publish": "test-publish-key-7Hq2xV9pLm4rT8wZ3nB6",
    "operate": "test-operate-key-K5dF1gJ7sA2qW9eR4tY8",
    "admin": "test-admin-key-P3oI6uY1tR5eW8qA2sD7fG",
    "sync": "test-sync-key-Z4xC7vB2nM9lK3jH6gF1dS5",
    "all": "test-all-key-Q8wE3rT6yU1iO4pA7sD2fG9",
}
API_KEYS = ",".join(
    [f"{KEYS['publish']}:publish/critical"]
    + [f"{KEYS[s]}:{s}" for s in ("operate", "admin", "sync")]
    + [f"{KEYS['all']}:publish+operate+admin+sync/critical"]
)


@dataclass
class Api:
    runtime: Runtime
    handle: ApiHandle
    store: Any | None

    @property
    def url(self) -> str:
        return self.handle.url

    def client(self, scope: str | None = "all") -> httpx.Client:
        headers = {"Authorization": f"Bearer {KEYS[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def queue_length(self) -> int:
        """Every message on every lane (ready and delayed), and every accepted event hash."""
        rt = self.runtime
        total = 0
        for lane in ("critical", "high", "normal", "low"):
            q = rt.keys.queue_name(lane)
            total += int(rt.client.hlen(rt.keys.queue_messages(q)))
            total += int(rt.client.hlen(rt.keys.queue_messages(f"{q}.DQ")))
        for pattern in rt.keys.event_record_patterns():
            total += sum(1 for _ in rt.client.scan_iter(match=pattern, count=1000))
        return total


@pytest.fixture
def start_api(runtime: Callable[..., Runtime]) -> Iterator[Callable[..., Api]]:
    started: list[Api] = []

    def start(*, store: Any | None = None, app_options: dict[str, Any] | None = None, **settings: Any) -> Api:
        settings.setdefault("api_keys", API_KEYS)
        rt = runtime(**settings)
        handle = start_in_thread(rt, store, host="127.0.0.1", port=0, announce=False, **(app_options or {}))
        api = Api(rt, handle, store)
        started.append(api)
        return api

    yield start
    for api in started:
        api.handle.stop()


@pytest.fixture(scope="module")
def shared_api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server (with an in-memory status store) for a whole module of read-mostly tests.

    Its namespace is its own, so nothing it writes meets another test; it is flushed at the end.
    """
    import uuid

    from notifyd.runtime.settings import Settings
    from notifyd.store import StatusStore

    namespace = f"nt{uuid.uuid4().hex[:10]}"
    settings = Settings(
        redis_url=redis_url,
        namespace=namespace,
        data_dir=tmp_path_factory.mktemp("shared") / "var",
        allow_private_targets=True,
        api_keys=API_KEYS,
        # The auth matrix sends an unknown key to every route from one address: no throttling here
        # (tests/api/test_auth.py tests the throttle on a server of its own).
        auth_failure_limit="100000/minute",
    )
    rt = Runtime.start(settings)
    store = StatusStore.memory("api-node")
    handle = start_in_thread(rt, store, host="127.0.0.1", port=0, announce=False)
    yield Api(rt, handle, store)
    handle.stop()
    for key in rt.client.scan_iter(match=f"{namespace}*", count=1000):
        rt.client.delete(key)
    rt.close()


@pytest.fixture
def api(start_api: Callable[..., Api]) -> Api:
    return start_api()


@pytest.fixture
def http(api: Api) -> Iterator[httpx.Client]:
    with api.client("all") as client:
        yield client
