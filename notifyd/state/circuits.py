"""Open circuits, as each worker process sees them, gathered in Redis for the dashboard.

Circuit breakers live in each worker process's adapters (``channels/circuit.py``)
and cost no Redis round trip on the send path. To show them in one place, each
worker writes a compact snapshot of its open circuits every few seconds into one
hash, a field per worker; the reader takes the union of fresh snapshots and drops
the stale ones of workers that stopped or died.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from notifyd.state.keys import Keys

#: How often a worker publishes its snapshot.
PUBLISH_EVERY_S = 5.0
#: A snapshot older than this belongs to a worker that is gone.
STALE_AFTER_S = 3 * PUBLISH_EVERY_S


@dataclass(frozen=True, slots=True)
class OpenCircuit:
    channel: str
    #: A host (``https://hooks.example.com:443``) or a provider (``twilio``): never a path or a secret.
    key: str
    state: str
    retry_in_s: float


def publish(
    client: redis.Redis, keys: Keys, worker_id: str, circuits: Iterable[OpenCircuit], *, at: float
) -> None:
    snapshot = {"at": round(at, 3), "open": [[c.channel, c.key, c.state, c.retry_in_s] for c in circuits]}
    pipe = client.pipeline(transaction=False)
    pipe.hset(keys.circuits(), worker_id, json.dumps(snapshot, separators=(",", ":")))
    # The whole hash goes when no worker has written for a while.
    pipe.expire(keys.circuits(), int(STALE_AFTER_S * 4))
    pipe.execute()


def withdraw(client: redis.Redis, keys: Keys, worker_id: str) -> None:
    client.hdel(keys.circuits(), worker_id)


def read(client: redis.Redis, keys: Keys, *, now: float) -> dict[str, Any]:
    """The union of the workers' open circuits, worst state first, and how many workers reported."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    stale: list[bytes] = []
    reporting = 0
    for worker, raw in client.hgetall(keys.circuits()).items():
        snapshot = json.loads(raw)
        if now - float(snapshot["at"]) > STALE_AFTER_S:
            stale.append(worker)
            continue
        reporting += 1
        for channel, key, state, retry_in_s in snapshot["open"]:
            seen = merged.setdefault(
                (channel, key),
                {"channel": channel, "key": key, "state": state, "retry_in_s": retry_in_s, "workers": 0},
            )
            seen["workers"] += 1
            if state == "open":
                seen["state"] = "open"
            seen["retry_in_s"] = max(seen["retry_in_s"], retry_in_s)
    if stale:
        client.hdel(keys.circuits(), *stale)
    circuits = sorted(merged.values(), key=lambda c: (c["state"] != "open", -c["workers"], c["key"]))
    return {"workers_reporting": reporting, "circuits": circuits}
