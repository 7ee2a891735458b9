"""Durable scheduled work: a sorted set of job ids by due time, drained by the workers.

Digests (``digest\\x1f<pending key>``) and maintenance reminders and transitions
are jobs. A worker claims due jobs with a lease (``lua/schedule_claim.lua``):
the job's score moves to now + lease, so a worker SIGKILLed mid-job leaves it
to come due again, and no two live workers run one job at once. A job is
removed only when its work is recorded; the work itself must be idempotent
(a reminder is published under a fixed event id, a digest keeps its
delivery id).
"""

from __future__ import annotations

import redis

from notifyd.state import scripts
from notifyd.state.keys import Keys

#: How long a claimed job is left to its worker before it comes due again.
LEASE_S = 30.0


class Schedule:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._claim = scripts.register(client, "schedule_claim")

    def add(self, job_id: str, at: float, payload: str = "") -> None:
        """Schedule a job (or move it) to ``at``; the payload travels with it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.schedule_jobs(), job_id, payload)
        pipe.zadd(self.keys.schedule(), {job_id: at})
        pipe.execute()

    def reschedule(self, job_id: str, at: float) -> None:
        self.client.zadd(self.keys.schedule(), {job_id: at}, xx=True)

    def remove(self, job_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.keys.schedule(), job_id)
        pipe.hdel(self.keys.schedule_jobs(), job_id)
        pipe.execute()

    def due_at(self, job_id: str) -> float | None:
        score = self.client.zscore(self.keys.schedule(), job_id)
        return float(score) if score is not None else None

    def payload(self, job_id: str) -> str | None:
        raw = self.client.hget(self.keys.schedule_jobs(), job_id)
        return raw.decode() if raw is not None else None

    def claim(self, now: float, *, lease_s: float = LEASE_S, limit: int = 100) -> list[str]:
        claimed = self._claim(keys=[self.keys.schedule()], args=[repr(now), repr(lease_s), limit])
        return [raw.decode() for raw in claimed]

    def jobs(self, prefix: str = "") -> dict[str, float]:
        """Every scheduled job (with this prefix) and when it is due; for tests and the CLI."""
        found = self.client.zrange(self.keys.schedule(), 0, -1, withscores=True)
        return {m.decode(): s for m, s in found if m.decode().startswith(prefix)}
