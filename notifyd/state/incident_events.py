"""Which events each incident (or component, or maintenance) had, by when they happened.

A delivery is superseded when a newer event about the same thing reached the
same subscriber first; this index answers "what is newer than this event?"
with one sorted-set read per shard or retry.
"""

from __future__ import annotations

import redis

from notifyd.state.keys import Keys


class IncidentEvents:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s

    def note(self, page_id: str, about: str, ref: str, occurred_at: float) -> None:
        """``ref`` is the event's (keys.event_ref); entries written before refs are bare ids,
        which are the refs of those events' records."""
        key = self.keys.incident_events(page_id, about)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {ref: occurred_at})
        pipe.expire(key, self.ttl_s)
        pipe.execute()

    def newer(self, page_id: str, about: str, occurred_at: float) -> list[str]:
        """Refs of the events about the same thing that happened strictly after ``occurred_at``,
        oldest first."""
        key = self.keys.incident_events(page_id, about)
        return [raw.decode() for raw in self.client.zrangebyscore(key, f"({occurred_at!r}", "+inf")]
