"""Refuse targets that resolve to loopback, private, link-local or metadata addresses.

The check runs on the resolved address at send time, and the caller then
connects to exactly the address that passed, so a second DNS answer (DNS
rebinding) cannot slip a private address past it. Where a client library
does its own connecting (Slack's webhook client on aiohttp),
:class:`CheckingResolver` runs the same check inside the connector.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from channels.addresses import (
    host_refusal,
    is_public_address,
    literal_address,
    non_public_range,
    resolve_host,
)

__all__ = [
    "BlockedTargetError",
    "CheckingResolver",
    "host_refusal",
    "is_public_address",
    "non_public_range",
    "resolve_checked",
    "resolve_host",
]

#: Resolved addresses are reused this long: a busy webhook host is not resolved per delivery.
DNS_CACHE_TTL_S = 10.0
_DNS_CACHE_MAX = 4096


class BlockedTargetError(Exception):
    """The target resolves to an address notifyd must not connect to."""


_cache: dict[tuple[str, int], tuple[float, list[str]]] = {}


async def _resolve(host: str, port: int) -> list[str]:
    key = (host.lower(), port)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise BlockedTargetError(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(_cache) >= _DNS_CACHE_MAX:
        _cache.clear()
    _cache[key] = (now + DNS_CACHE_TTL_S, addresses)
    return addresses


#: Resolves (host, port) to addresses; :func:`resolve_checked` takes one in place of the system's
#: DNS (and its cache), so a test can play a name that answers public and then loopback.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_checked(
    host: str, port: int, *, allow_private: bool, resolver: Resolver | None = None
) -> str:
    """Resolve ``host`` and return one address that may be connected to."""
    host = host.strip("[]")
    if not host:
        raise BlockedTargetError("the target has no host")
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    elif resolver is not None:
        addresses = list(await resolver(host, port))
        if not addresses:
            raise BlockedTargetError(f"cannot resolve {host}")
    else:
        addresses = await _resolve(host, port)
    if allow_private:
        return addresses[0]
    for address in addresses:
        if is_public_address(address):
            return address
    raise BlockedTargetError(f"{host} resolves only to non-public addresses")


class CheckingResolver(AbstractResolver):
    """An aiohttp resolver that drops non-public addresses (unless allowed) at connect time.

    aiohttp does not ask the resolver about IP literals, so callers check
    literal hosts with :func:`resolve_checked` before sending.
    """

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            infos = [info for info in infos if is_public_address(info["host"])]
        if not infos:
            raise OSError(f"{host} resolves only to non-public addresses")
        return infos

    async def close(self) -> None:
        await self._inner.close()
