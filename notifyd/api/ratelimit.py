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
    def __init__(
        self, client: redis.Redis, ns: str, rate: str = DEFAULT_PUBLISH_RATE, *, key_prefix: str | None = None
    ) -> None:
        self.item: RateLimitItem = parse(rate)
        # Share the runtime's pool; the URI only tells limits which client library to use.
        storage = RedisStorage(
            "redis://", connection_pool=client.connection_pool, key_prefix=key_prefix or f"{ns}:apirl"
        )
        self.limiter = MovingWindowRateLimiter(storage)

    def hit(self, key_id: str) -> float | None:
        """Take one slot for ``key_id``; None when allowed, else seconds until a slot frees."""
        if self.limiter.hit(self.item, key_id):
            return None
        stats = self.limiter.get_window_stats(self.item, key_id)
        return max(1.0, math.ceil(stats.reset_time - time.time()))


class AuthThrottle:
    """Failed authentications per client address: past the limit, the address gets 429s.

    Only a wrong key counts (not a missing one): that is what guessing looks like. While an
    address is throttled, even a right key is refused, so guessing cannot go on in parallel
    with real work from the same address. Behind a proxy every client has the proxy's address;
    keys are 32+ random characters, so the limit is there to cut log noise and weak-key luck.
    """

    def __init__(self, client: redis.Redis, ns: str, rate: str) -> None:
        self.item: RateLimitItem = parse(rate)
        storage = RedisStorage(
            "redis://", connection_pool=client.connection_pool, key_prefix=f"{ns}:authfail"
        )
        self.limiter = MovingWindowRateLimiter(storage)

    def retry_after(self, address: str) -> float | None:
        """None while ``address`` may still try; else seconds until it may."""
        if self.limiter.test(self.item, address):
            return None
        stats = self.limiter.get_window_stats(self.item, address)
        return max(1.0, math.ceil(stats.reset_time - time.time()))

    def failed(self, address: str) -> None:
        self.limiter.hit(self.item, address)
