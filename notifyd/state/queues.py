"""Queue depths and the retry backlog, read from the broker's own keys (dramatiq's Redis layout)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis
from dramatiq import Message
from dramatiq.errors import DecodeError

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


#: Upper edges (seconds from now) of the retry backlog's due-time buckets; the last is open.
DUE_EDGES_S = (0, 60, 300, 900, 3600)
DUE_LABELS = ("overdue", "< 1 min", "1-5 min", "5-15 min", "15-60 min", "> 1 h")
#: Delayed messages read per lane; a larger backlog is reported as truncated.
MAX_DELAYED_READ = 5000


def _due_bucket(seconds: float) -> int:
    for i, edge in enumerate(DUE_EDGES_S):
        if seconds <= edge:
            return i
    return len(DUE_EDGES_S)


def retry_backlog(client: redis.Redis, keys: Keys, *, now: float) -> dict[str, Any]:
    """Delayed messages per lane by when they come due, and the deliveries they carry.

    dramatiq keeps a delayed message in the lane's delay queue (``<queue>.DQ``) with
    its ``eta`` in the message until a worker moves it back to the lane; a retry
    message's second argument is the list of deliveries (seqs) it sends again.
    """
    lanes = []
    truncated = False
    for lane in PRIORITIES:
        messages = [0] * len(DUE_LABELS)
        deliveries = [0] * len(DUE_LABELS)
        read = 0
        for _, raw in client.hscan_iter(keys.queue_messages(keys.delayed_queue_name(lane)), count=500):
            if read >= MAX_DELAYED_READ:
                truncated = True
                break
            read += 1
            try:
                message = Message.decode(raw)
            except DecodeError:
                continue
            eta_ms = message.options.get("eta")
            due = _due_bucket((eta_ms / 1000.0 - now) if eta_ms else 0.0)
            messages[due] += 1
            carried = message.args[1] if len(message.args) > 1 else None
            deliveries[due] += len(carried) if isinstance(carried, list) else 0
        lanes.append({"lane": lane, "messages": messages, "deliveries": deliveries})
    return {"buckets": list(DUE_LABELS), "lanes": lanes, "truncated": truncated, "at": now}
