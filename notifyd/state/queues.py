"""Queue depths and the retry backlog, read from the broker's own keys (dramatiq's Redis layout)."""

from __future__ import annotations

import time
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
    #: How long the message at the head of the lane has been waiting, in seconds (0 when empty).
    oldest_age_s: float = 0.0


def lane_stats(client: redis.Redis, keys: Keys, *, now: float | None = None) -> list[LaneStats]:
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for lane in PRIORITIES:
        q = keys.queue_name(lane)
        pipe.llen(keys.queue(q))
        pipe.hlen(keys.queue_messages(q))
        pipe.hlen(keys.queue_messages(f"{q}.DQ"))
        pipe.zcard(keys.queue(f"{q}.XQ"))
        # dramatiq appends with RPUSH and takes with LPOP: the head is the longest waiting.
        pipe.lindex(keys.queue(q), 0)
    values = pipe.execute()
    heads = _head_messages(client, keys, [values[i * 5 + 4] for i in range(len(PRIORITIES))])
    stats = []
    for i, lane in enumerate(PRIORITIES):
        ready, stored, delayed, dead = values[i * 5 : i * 5 + 4]
        # Stored messages that are not waiting in the list were fetched by a worker.
        age = _waiting_s(heads[i], now) if ready else 0.0
        stats.append(LaneStats(lane, ready, max(0, stored - ready), delayed, dead, age))
    return stats


def _head_messages(client: redis.Redis, keys: Keys, head_ids: list[bytes | None]) -> list[bytes | None]:
    pipe = client.pipeline(transaction=False)
    for lane, head in zip(PRIORITIES, head_ids, strict=True):
        if head is not None:
            pipe.hget(keys.queue_messages(keys.queue_name(lane)), head)
    found = iter(pipe.execute() if any(h is not None for h in head_ids) else [])
    return [next(found) if head is not None else None for head in head_ids]


def _waiting_s(raw: bytes | None, now: float) -> float:
    """Seconds since the message became ready: its enqueue time, or its eta for a delayed retry."""
    if raw is None:
        return 0.0
    try:
        message = Message.decode(raw)
    except DecodeError:
        return 0.0
    ready_ms = max(float(message.message_timestamp or 0), float(message.options.get("eta") or 0))
    return round(max(0.0, now - ready_ms / 1000.0), 3)


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
