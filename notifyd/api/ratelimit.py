"""A moving-window limit per publisher key, on the same Redis, with the limits library."""

from __future__ import annotations

import math
import time

import redis
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

#: Events per publisher key; generous, it guards Redis against a runaway script, not fair use.
DEFAULT_PUBLISH_RATE = "100/second"


class PublishLimiter:
    def __init__(self, client: redis.Redis, ns: str, rate: str = DEFAULT_PUBLISH_RATE) -> None:
        self.item: RateLimitItem = parse(rate)
        # Share the runtime's pool; the URI only tells limits which client library to use.
        storage = RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix=f"{ns}:apirl")
        self.limiter = MovingWindowRateLimiter(storage)

    def hit(self, key_id: str) -> float | None:
        """Take one slot for ``key_id``; None when allowed, else seconds until a slot frees."""
        if self.limiter.hit(self.item, key_id):
            return None
        stats = self.limiter.get_window_stats(self.item, key_id)
        return max(1.0, math.ceil(stats.reset_time - time.time()))
