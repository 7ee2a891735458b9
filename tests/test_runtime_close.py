"""Stopping the in-process worker and closing its runtime leaves none of the broker's sockets open."""

from __future__ import annotations

import redis

from notifyd.runtime.worker import InProcessWorker
from tests.support.wait import wait_until


def _connected(pool: redis.ConnectionPool) -> list[redis.Connection]:
    # redis-py has no public view of a pool's connections; these two sets are all of them.
    connections = [*pool._available_connections, *pool._in_use_connections]
    return [c for c in connections if c._sock is not None]


def test_closing_the_runtime_disconnects_the_broker_pool_its_consumers_used(runtime):
    rt = runtime()
    pool = rt.broker.client.connection_pool
    worker = InProcessWorker.start(rt, threads=2)
    try:
        assert wait_until(lambda: len(_connected(pool)) > 0)  # the consumers are polling
    finally:
        worker.stop()
        rt.close()
    # Before, these sockets stayed open until the garbage collector reached the broker's
    # reference cycle, and one closed by its own finalizer failed the run with a ResourceWarning.
    assert _connected(pool) == []
