"""Subscribe-time DNS: may notifyd deliver to the host a webhook or Slack target names?

The model's target check refuses IP literals in non-public ranges and ``localhost``
without DNS. This resolves the other host names, with a timeout and a cache (an
import names a few hosts many times), and refuses a name that resolves only to
non-public addresses; a name that does not resolve is accepted with a warning.
Every send checks the resolved address again (:mod:`channels.ssrf`): DNS changes.
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from channels.addresses import host_refusal, literal_address, non_public_range, resolve_host
from notifyd.models import SubscriberLine
from notifyd.state.subscriber_errors import TargetRefused
from notifyd.targets import PRIVATE_HINT, url_host

#: Resolves a host name to its addresses; None when it does not resolve (in time).
Resolver = Callable[[str], "list[str] | None"]
#: How long a subscribe-time DNS answer is reused (an import names a few hosts many times).
DNS_CACHE_TTL_S = 60.0
_DNS_CACHE_MAX = 10_000


def host_of(sub: SubscriberLine) -> str | None:
    """The host a webhook or Slack subscriber's URL names (None for other targets)."""
    if sub.channel not in ("webhook", "slack") or "://" not in sub.target:
        return None
    return url_host(sub.target)


def endpoint_of(channel: str, target: str) -> str:
    """Where an endpoint lives, without its path: a Slack or webhook URL's path is often its
    secret. ``scheme://host[:port]``, a ``slack:<channel id>`` as it is, else the channel."""
    parts = urlsplit(target)
    if parts.scheme and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"
    return target if target.startswith("slack:") else channel


class HostCheck:
    """Judges target hosts at subscribe time; each host once per :data:`DNS_CACHE_TTL_S`."""

    def __init__(
        self, *, allow_private: bool, resolver: Resolver | None = None, timeout_s: float = 1.0
    ) -> None:
        self.allow_private = allow_private
        #: Tests inject their own.
        self.resolver: Resolver = resolver or functools.partial(resolve_host, timeout=timeout_s)
        self._dns: dict[str, tuple[float, str | None, str | None]] = {}

    def vet(self, sub: SubscriberLine, host: str | None = None) -> tuple[str, ...]:
        """Resolve a webhook or Slack URL's host name, unless private targets are allowed.

        A name that resolves only to non-public addresses raises :class:`TargetRefused`
        naming the range; one that does not resolve is accepted with a warning (returned).
        IP literals and ``localhost`` were refused by the model's syntax check already.
        """
        if self.allow_private or sub.channel not in ("webhook", "slack"):
            return ()
        host = host or host_of(sub)
        if not host:
            return ()
        hit = self._dns.get(host)
        if hit is None or hit[0] < time.monotonic():
            self.prefetch([host])
            hit = self._dns[host]
        _, refusal, warning = hit
        if refusal is not None:
            raise TargetRefused(f"target: {refusal}: {PRIVATE_HINT}")
        return (warning,) if warning else ()

    def prefetch(self, hosts: Iterable[str]) -> None:
        """Judge the hosts not judged lately, resolving them in parallel (an import batch names many)."""
        now = time.monotonic()
        todo = {h for h in hosts if h not in self._dns or self._dns[h][0] < now}
        if not todo:
            return
        if len(self._dns) + len(todo) >= _DNS_CACHE_MAX:
            self._dns.clear()
        plain = [h for h in todo if host_refusal(h) is None and literal_address(h.strip("[]")) is None]
        for host in todo.difference(plain):  # literals and localhost: the model refused those
            self._dns[host] = (now + DNS_CACHE_TTL_S, None, None)
        judged = [self._judge(plain[0])] if len(plain) == 1 else list(_dns_pool().map(self._judge, plain))
        for host, (refusal, warning) in zip(plain, judged, strict=True):
            self._dns[host] = (now + DNS_CACHE_TTL_S, refusal, warning)

    def _judge(self, host: str) -> tuple[str | None, str | None]:
        addresses = self.resolver(host)
        if not addresses:
            return None, f"{host} does not resolve now; accepted, and checked again at every send"
        ranges = [non_public_range(a) for a in addresses]
        if all(r is not None for r in ranges):
            return f"{host} resolves only to non-public addresses ({addresses[0]} is in {ranges[0]})", None
        return None, None


@functools.cache
def _dns_pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="notifyd-subscribe-dns")
