"""Queue depths read from the broker's own keys (dramatiq's Redis layout)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from notifyd.runtime.settings import PRIORITIES
from notifyd.state.keys import Keys


@dataclass(frozen=True, slots=True)
class LaneStats:
    lane: str
    ready: int
    in_flight: int
    delayed: int
    dead_messages: int


def lane_stats(client: redis.Redis, keys: Keys) -> list[LaneStats]:
    pipe = client.pipeline(transaction=False)
    for lane in PRIORITIES:
        q = keys.queue_name(lane)
        pipe.llen(keys.queue(q))
        pipe.hlen(keys.queue_messages(q))
        pipe.hlen(keys.queue_messages(f"{q}.DQ"))
        pipe.zcard(keys.queue(f"{q}.XQ"))
    values = pipe.execute()
    stats = []
    for i, lane in enumerate(PRIORITIES):
        ready, stored, delayed, dead = values[i * 4 : i * 4 + 4]
        # Stored messages that are not waiting in the list were fetched by a worker.
        stats.append(LaneStats(lane, ready, max(0, stored - ready), delayed, dead))
    return stats


def snapshot(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    return {
        "lanes": [asdict(s) for s in lane_stats(client, keys)],
        "dead_deliveries": int(client.zcard(keys.dead_letters())),
        "workers": int(client.zcard(f"{keys.ns}:__heartbeats__")),
    }
