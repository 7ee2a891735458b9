"""Bind the engine's steps to dramatiq actors: one per step and priority lane.

The engine is built lazily in each worker process (after the fork), so that
Redis connections and the adapters' event loop belong to that process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import dramatiq

from notifyd.pipeline.engine import Engine
from notifyd.pipeline.steps import CONFIRM, DELIVER_SHARD, INGEST, RESUME, RETRY, actor_name
from notifyd.runtime.broker import LANE_PRIORITY
from notifyd.runtime.logs import log_context
from notifyd.runtime.settings import PRIORITIES, URGENT_LANES
from notifyd.state.keys import Keys, split_ref

#: A shard that takes longer than this is killed and retried by dramatiq.
SHARD_TIME_LIMIT_MS = 5 * 60 * 1000
#: Within a lane, among the messages a worker has prefetched: an event's ingest first (a small
#: page's event does not wait behind a fan-out's shards), then the continuations of started
#: work, then new shards. Offsets to the lane's priority; they never reach the next lane's.
STEP_PRIORITY = {INGEST: 0, RESUME: 1, RETRY: 1, CONFIRM: 1, DELIVER_SHARD: 2}

EngineFactory = Callable[[], Engine]


class EngineHolder:
    def __init__(self, factory: EngineFactory) -> None:
        self._factory = factory
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def get(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._factory()
        return self._engine

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()


def declare_actors(broker: dramatiq.Broker, holder: EngineHolder, keys: Keys) -> dict[str, dramatiq.Actor]:
    actors: dict[str, dramatiq.Actor] = {}

    def bind(step: str, lane: str, fn: Callable[..., Any]) -> None:
        name = actor_name(step, lane)

        urgent = lane in URGENT_LANES

        def run(handle: str, *args: Any) -> Any:
            # An event step's handle is the event's ref (its page and id); a confirmation's, an id.
            page_id, event_id = split_ref(handle)
            with log_context(
                event_id=event_id, lane=lane, step=step, **({"page_id": page_id} if page_id else {})
            ):
                if urgent:  # the bulk dispatcher yields the process's CPU while it runs
                    with holder.get().dispatchers.steps:
                        return fn(handle, *args)
                # A bulk step waits while urgent work runs here (see Dispatcher.yield_to_urgent).
                holder.get().dispatchers.bulk.yield_to_urgent()
                return fn(handle, *args)

        run.__name__ = name
        actors[name] = dramatiq.Actor(
            run,
            broker=broker,
            actor_name=name,
            queue_name=keys.queue_name(lane),
            priority=LANE_PRIORITY[lane] + STEP_PRIORITY[step],
            options={"time_limit": SHARD_TIME_LIMIT_MS},
        )

    for lane in PRIORITIES:
        bind(INGEST, lane, lambda event_id: holder.get().ingest(event_id))
        bind(
            DELIVER_SHARD,
            lane,
            lambda event_id, shard, start, end: holder.get().deliver_shard(event_id, shard, start, end),
        )
        bind(
            RETRY,
            lane,
            lambda event_id, seqs, attempt, shaped=False: holder.get().retry(event_id, seqs, attempt, shaped),
        )
        bind(
            RESUME,
            lane,
            lambda event_id, seqs, shaped=False: holder.get().deliver_shard.resume(event_id, seqs, shaped),
        )
        bind(CONFIRM, lane, lambda pending_id, attempt: holder.get().confirm(pending_id, attempt))
    return actors
