"""Where Redis is: the configured URL, or the embedded server started on demand."""

from __future__ import annotations

import logging

import redis

from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.runtime.settings import Settings

log = logging.getLogger(__name__)

#: How long start-up waits for a configured Redis to answer a PING.
REACH_TIMEOUT_S = 5.0


class RedisUnavailable(redis.ConnectionError):
    """The configured Redis does not answer. The message is one line: the URL (password masked) and why."""


def resolve_redis(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """Return the Redis URL to use, starting the embedded server only when no URL is configured.

    A configured URL is checked with a PING; one that does not answer raises RedisUnavailable,
    never a fall-back to the embedded server.
    """
    if settings.redis_url:
        check_reachable(settings.redis_url)
        if settings.redis_url.startswith("unix://"):
            server = EmbeddedRedis(settings.data_dir, maxmemory=settings.embedded_maxmemory)
            if settings.redis_url == server.url:
                # This data dir's embedded server, which `notifyd worker --processes N` passes on
                # to its children: each is one of its users, so it runs until the last one leaves.
                server.attach()
                return settings.redis_url, server
        return settings.redis_url, None
    server = EmbeddedRedis(settings.data_dir, maxmemory=settings.embedded_maxmemory)
    url = server.start()
    log.warning("NOTIFYD_REDIS_URL is unset: using the embedded server, data in %s", settings.data_dir)
    return url, server


def check_reachable(url: str, *, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """PING ``url`` once; raise RedisUnavailable naming the URL and the cause when it does not answer."""
    try:
        client = client_for(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        cause = str(exc).strip() or type(exc).__name__
        password = _password(url)
        if password:
            cause = cause.replace(password, "***")
        raise RedisUnavailable(f"cannot reach Redis at {describe_url(url)}: {cause}") from None


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


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None
