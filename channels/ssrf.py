"""Refuse targets that resolve to loopback, private, link-local or metadata addresses.

The check runs on the resolved address at send time, and the caller then
connects to exactly the address that passed, so a second DNS answer (DNS
rebinding) cannot slip a private address past it. Where a client library
does its own connecting (Slack's webhook client on aiohttp),
:class:`CheckingResolver` runs the same check inside the connector.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

#: Resolved addresses are reused this long: a busy webhook host is not resolved per delivery.
DNS_CACHE_TTL_S = 10.0
_DNS_CACHE_MAX = 4096

#: IPv6 prefixes that embed an IPv4 address (NAT64 well-known prefix).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedTargetError(Exception):
    """The target resolves to an address notifyd must not connect to."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """True only for globally routable unicast addresses (metadata 169.254.169.254 is link-local)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


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


@functools.lru_cache(maxsize=4096)
def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve ``host`` and return one address that may be connected to."""
    host = host.strip("[]")
    if not host:
        raise BlockedTargetError("the target has no host")
    literal = _literal(host)
    addresses = [literal] if literal is not None else await _resolve(host, port)
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
