"""Provider send rates: a Twilio sender's MPS, an SMTP relay's rate, Slack's 1 per second per hook.

Every worker process reserves send times on one schedule per provider key in
Redis (``lua/shape.lua``, a GCRA reservation for a whole step in one call).
A delivery whose time is near is sent then (the dispatcher holds it until its
time); one whose time is further out is handed on as delayed work, a
continuation message that comes due at its time and paces the group at the
provider's interval. Nothing over a rate is failed or dropped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from notifyd.runtime.settings import Settings
from notifyd.state import scripts
from notifyd.state.keys import Keys
from notifyd.state.subscribers import StoredSubscriber
from notifyd.state.target_digests import TargetDigests

#: Deliveries whose time comes within this many seconds are sent by the step itself.
HORIZON_S = 2.0


@dataclass(frozen=True, slots=True)
class Plan:
    """When each delivery may go (epoch seconds, None = now), and the groups to hand on."""

    at: list[float | None]
    #: Those due beyond the horizon, in groups: (when the group comes due, its indexes in order)
    later: list[tuple[float, list[int]]]


class Shaper:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings, digests: TargetDigests) -> None:
        self.keys = keys
        #: A Slack hook's schedule is named by its keyed digest: the URL is a credential.
        self.digests = digests
        self.rates: dict[str, float | None] = {
            "sms": settings.twilio_mps,
            "email": settings.smtp_rate_per_s,
            "slack": settings.slack_rate_per_s,
        }
        self._reserve = scripts.register(client, "shape")

    def key(self, sub: StoredSubscriber) -> str | None:
        if not self.rates.get(sub.channel):
            return None
        # Slack limits each incoming webhook or channel; the others limit the whole sender. A sealed
        # hook's record carries its digest already (the same one: notifyd/state/subscribers.py).
        if sub.channel != "slack":
            return sub.channel
        return f"slack:{sub.target_digest or self.digests.digest('slack', sub.stored_target)}"

    def interval(self, channel: str) -> float:
        rate = self.rates.get(channel)
        return 1.0 / rate if rate else 0.0

    def paced(self, subs: Sequence[StoredSubscriber], start: float) -> list[float | None]:
        """Send times for deliveries whose slots were reserved already: spaced from ``start``."""
        seen: dict[str, int] = defaultdict(int)
        at: list[float | None] = []
        for sub in subs:
            key = self.key(sub)
            if key is None:
                at.append(None)
                continue
            at.append(start + seen[key] * self.interval(sub.channel))
            seen[key] += 1
        return at

    def plan(self, subs: Sequence[StoredSubscriber], *, now: float | None = None) -> Plan:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, sub in enumerate(subs):
            key = self.key(sub)
            if key is not None:
                groups[key].append(i)
        at: list[float | None] = [None] * len(subs)
        if not groups:
            return Plan(at, [])
        now = time.time() if now is None else now
        order = list(groups.items())
        args: list[float | int] = [int(now * 1000)]
        for _, members in order:
            args += [self.interval(subs[members[0]].channel) * 1000, len(members)]
        firsts = self._reserve(keys=[self.keys.send_rate(k) for k, _ in order], args=args)
        later: list[tuple[float, list[int]]] = []
        for (_, members), first in zip(order, firsts, strict=True):
            start = float(first) / 1000
            step = self.interval(subs[members[0]].channel)
            due_at, group = 0.0, list[int]()
            for n, i in enumerate(members):
                when = start + n * step
                at[i] = when
                if when - now <= HORIZON_S:
                    continue
                # Hand on in groups of HORIZON_S, each due at its first delivery's time.
                if group and when - due_at >= HORIZON_S:
                    later.append((due_at, group))
                    group = []
                if not group:
                    due_at = when
                group.append(i)
            if group:
                later.append((due_at, group))
        return Plan(at, later)
