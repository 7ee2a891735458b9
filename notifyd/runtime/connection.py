"""Where Redis is: the configured URL, or the embedded server started on demand."""

from __future__ import annotations

import redis

from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.runtime.settings import Settings


def resolve_redis(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """Return the Redis URL to use, starting the embedded server when no URL is set."""
    if settings.redis_url:
        return settings.redis_url, None
    server = EmbeddedRedis(settings.data_dir)
    return server.start(), server


def client_for(url: str, **kwargs: object) -> redis.Redis:
    return redis.Redis.from_url(url, **kwargs)  # type: ignore[arg-type]


def describe_url(url: str) -> str:
    """The URL with any password masked, for logs and banners."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url
