"""A webhook sink in a process of its own, for the end-to-end delivery benchmark.

    python benchmarks/_sink.py --ports 8 --secret whsec_... [--seed 1]

Listens on ``--ports`` loopback ports (so the deliveries spread over several
"hosts", as real endpoints are), checks every Standard Webhooks signature
with the one secret every benchmark subscriber shares, and answers after a
latency chosen by the path's profile:

    /h/instant/<n>   at once
    /h/slow/<n>      after 500 ms
    /h/mixed/<n>     p50 80 ms, p99 2 s; 1% hang past the sender's 10 s timeout; 1% answer 500

Arrival is recorded when the request comes in, before the injected latency.
``GET /_stats?event=<id>`` answers ``{"count", "unique", "first", "last", "bad_signature",
"late_mean", "late_max"}`` (epoch seconds; ``late_*``: how much later than its profile's latency
the sink itself answered, in seconds, a measure of the instrument's own stalls). Prints
``READY <port>,<port>,...`` once it listens.

The sink settles its garbage collector as the workers do (``settle_gc``): with thousands of
requests held for their latency, the default collector paused the whole sink for 150-450 ms
at a time, and every endpoint answered that much late at once, which no set of real endpoints
on separate machines does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field

from aiohttp import web

from notifyd.runtime.worker import settle_gc

HANG_S = 12.0


@dataclass
class EventStats:
    count: int = 0
    first: float = math.inf
    last: float = 0.0
    ids: set[str] = field(default_factory=set)
    delayed: int = 0
    late_sum: float = 0.0
    late_max: float = 0.0
    #: Requests being held for their latency now, and at most (what the senders kept in flight).
    holding: int = 0
    holding_max: int = 0
    #: Arrivals per 100 ms since the first (a run's shape: its ramp, its plateau, its tail).
    per_tick: list[int] = field(default_factory=list)


#: Replies are held in buckets this wide (seconds): one timer per bucket, not one per request.
HOLD_TICK_S = 0.005


class Holds:
    """Replies held until their time, in HOLD_TICK_S buckets. A timer per held request cost the
    sink ~40 us more per request than an instant reply (measured, mixed profile), CPU that on
    this two-core machine comes out of the workers' share; endpoints on machines of their own
    cost the workers nothing. A reply so goes up to HOLD_TICK_S late (printed as lateness)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._buckets: dict[int, list[asyncio.Future[None]]] = {}

    def until(self, delay: float) -> asyncio.Future[None]:
        """A future of its own per request: a client that hangs up cancels only its own."""
        bucket = math.ceil((self.loop.time() + delay) / HOLD_TICK_S)
        held = self._buckets.get(bucket)
        if held is None:
            held = self._buckets[bucket] = []
            self.loop.call_at(bucket * HOLD_TICK_S, self._release, bucket)
        future: asyncio.Future[None] = self.loop.create_future()
        held.append(future)
        return future

    def _release(self, bucket: int) -> None:
        for future in self._buckets.pop(bucket):
            if not future.done():
                future.set_result(None)


def mixed_delay(rng: random.Random) -> tuple[float, int]:
    """(seconds, status): lognormal with p50 80 ms and p99 2 s; 1% hangs, 1% answer 500."""
    roll = rng.random()
    if roll < 0.01:
        return HANG_S, 200
    status = 500 if roll < 0.02 else 200
    # ln(2000/80) / z(0.99) = 3.219 / 2.326
    return min(HANG_S, 0.080 * math.exp(rng.gauss(0.0, 1.384))), status


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=8)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    key = base64.b64decode(args.secret.removeprefix("whsec_"))
    rng = random.Random(args.seed)
    stats: dict[str, EventStats] = {}
    bad = [0]

    async def hook(request: web.Request) -> web.Response:
        now = asyncio.get_running_loop().time() + offset
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        ts = request.headers.get("webhook-timestamp", "")
        expected = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        given = request.headers.get("webhook-signature", "").removeprefix("v1,")
        if not hmac.compare_digest(base64.b64encode(expected).decode(), given):
            bad[0] += 1
            return web.Response(status=401, text="bad signature")
        event_id = json.loads(body).get("event_id", "")
        s = stats.setdefault(event_id, EventStats())
        s.count += 1
        s.first = min(s.first, now)
        s.last = max(s.last, now)
        s.ids.add(msg_id)
        tick = int((now - s.first) * 10)
        if tick < 6000:
            s.per_tick.extend([0] * (tick + 1 - len(s.per_tick)))
            s.per_tick[tick] += 1
        profile = request.match_info["profile"]
        delay, status = 0.0, 200
        if profile == "slow":
            delay = 0.5
        elif profile == "mixed":
            delay, status = mixed_delay(rng)
        if delay:
            s.holding += 1
            s.holding_max = max(s.holding_max, s.holding)
            try:
                await holds.until(delay)
            finally:
                s.holding -= 1
            late = asyncio.get_running_loop().time() + offset - now - delay
            s.delayed += 1
            s.late_sum += late
            s.late_max = max(s.late_max, late)
        return web.Response(status=status, text="ok")

    async def read_stats(request: web.Request) -> web.Response:
        s = stats.get(request.query.get("event", ""), EventStats())
        return web.json_response(
            {
                "count": s.count,
                "unique": len(s.ids),
                "first": s.first if s.count else None,
                "last": s.last if s.count else None,
                "bad_signature": bad[0],
                "late_mean": s.late_sum / s.delayed if s.delayed else 0.0,
                "late_max": s.late_max,
                "holding_max": s.holding_max,
                "per_tick": s.per_tick,
            }
        )

    async def serve() -> None:
        nonlocal offset, holds
        offset = time.time() - asyncio.get_running_loop().time()
        holds = Holds(asyncio.get_running_loop())
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/h/{profile}/{n}", hook)
        app.router.add_get("/_stats", read_stats)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        ports = []
        for _ in range(args.ports):
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
            await site.start()
            ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        settle_gc()
        print("READY " + ",".join(str(p) for p in ports), flush=True)
        await asyncio.Event().wait()

    offset = 0.0
    holds: Holds
    try:
        import uvloop  # noqa: F401 - faster when present, not needed

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
