"""Refuse targets that resolve to loopback, private, link-local or metadata addresses.

The check runs on the resolved address at send time, and the caller then
connects to exactly the address that passed, so a second DNS answer (DNS
rebinding) cannot slip a private address past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class BlockedTargetError(Exception):
    """The target resolves to an address notifyd must not connect to."""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve ``host`` and return one address that may be connected to."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise BlockedTargetError(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = [str(info[4][0]) for info in infos]
    if allow_private:
        return addresses[0]
    for address in addresses:
        if is_public_address(address):
            return address
    raise BlockedTargetError(f"{host} resolves only to non-public addresses")
