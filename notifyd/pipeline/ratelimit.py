"""Per-subscriber-per-channel rate limits with the limits library, one round trip per shard.

limits' moving-window acquire runs one script call per key; a shard of 1000
would pay 1000 script invocations. ``lua/ratelimit.lua`` runs the same logic
over every key of the shard in one call. The keys (named by limits' storage)
and the list layout are limits' own, so ``MovingWindowRateLimiter.get_window_stats``
sees the same counters.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis
from limits import RateLimitItem, parse
from limits.storage import RedisStorage

from notifyd.state import scripts


class BatchRateLimiter:
    def __init__(self, client: redis.Redis, *, rate: str, key_prefix: str) -> None:
        self.client = client
        self.item: RateLimitItem = parse(rate)
        # Share our connection pool; the URI only tells limits which client library to use.
        self.storage = RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix=key_prefix)
        self._acquire = scripts.register(client, "ratelimit")

    def key(self, subscriber_id: str, channel: str) -> str:
        return self.storage.prefixed_key(self.item.key_for(subscriber_id, channel))

    def hit_many(self, identities: Sequence[tuple[str, str]]) -> list[bool]:
        """Take one slot for each (subscriber_id, channel); True where it was allowed."""
        if not identities:
            return []
        now = time.time()
        amount, expiry = self.item.amount, self.item.get_expiry()
        keys = [self.key(subscriber_id, channel) for subscriber_id, channel in identities]
        return [bool(allowed) for allowed in self._acquire(keys=keys, args=[repr(now), amount, expiry])]
