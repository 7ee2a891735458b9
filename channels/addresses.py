"""Is this address public? The one owner of that answer, at subscribe time and at send time.

Pure functions over ``ipaddress`` (and a resolver with a timeout for subscribe time); no HTTP
client is imported here, so the subscriber model can use them without loading aiohttp.
:mod:`channels.ssrf` uses them when sending.
"""

from __future__ import annotations

import concurrent.futures
import functools
import ipaddress
import socket

#: IPv6 prefixes that embed an IPv4 address (NAT64 well-known prefix).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


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


#: Non-public ranges by name, so a refusal can say which one a target is in. Anything else
#: that Python's ``ipaddress`` does not call global is refused as "not globally routable".
NON_PUBLIC_RANGES: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), name)
    for net, name in (
        ("0.0.0.0/8", "this-network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local, cloud metadata"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)

#: Names that always mean this machine (RFC 6761 reserves .localhost).
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def non_public_range(address: str) -> str | None:
    """The non-public range ``address`` is in, as "127.0.0.0/8 (loopback)"; None when it is public.

    The one owner of "is this address public", at subscribe time and at send time.
    An IPv6 address that embeds an IPv4 one (mapped, 6to4, Teredo, NAT64) is judged by both.
    """
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = non_public_range(str(embedded))
            if inner is not None:
                return f"{inner}, embedded in {ip}"
    for net, name in NON_PUBLIC_RANGES:
        if ip.version == net.version and ip in net:
            return f"{net} ({name})"
    if ip.is_private or ip.is_reserved or ip.is_multicast or not ip.is_global:
        return "not globally routable"
    return None


def is_public_address(address: str) -> bool:
    """True only for globally routable unicast addresses (metadata 169.254.169.254 is link-local)."""
    return non_public_range(address) is None


@functools.lru_cache(maxsize=4096)
def host_refusal(host: str) -> str | None:
    """Why a host is not public without asking DNS: an IP literal in a non-public range, or a
    name of this machine. None when only resolving it can tell."""
    host = host.strip("[]").rstrip(".").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host} names this machine (loopback)"
    literal = literal_address(host)
    if literal is not None:
        found = non_public_range(literal)
        return f"{host} is in {found}" if found is not None else None
    return None


def resolve_host(host: str, *, timeout: float) -> list[str] | None:
    """The addresses ``host`` resolves to, or None when it does not resolve within ``timeout``."""
    future = _resolver_pool().submit(socket.getaddrinfo, host, 443, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except (OSError, UnicodeError, concurrent.futures.TimeoutError):
        return None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@functools.cache
def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="notifyd-dns")


@functools.lru_cache(maxsize=4096)
def literal_address(host: str) -> str | None:
    """``host`` as a normalised IP address when it is an IP literal, else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None
