"""Delivered, retrying and failed per lane in 10-second buckets, and publish-to-delivery latency.

The pipeline calls :func:`record` once per recorded batch (at most a send chunk of
deliveries): a few ``HINCRBY`` on the current bucket's hash in one pipelined round
trip, never a command per delivery. Each bucket expires on its own a little after
the dashboard's 15-minute window, so nothing here grows.

Latency is kept as a log-scale histogram per lane and bucket: field ``h<i>`` counts
deliveries that took at most ``2 ** (i / 4)`` ms, each step 19% wider than the last.
A batch's deliveries all finished at the same moment, so a batch adds to one field,
and p50/p99 come out to within that 19%.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from notifyd.state.keys import Keys

#: Width of one bucket (one point of the dashboard's charts).
BUCKET_S = 10
#: What the dashboard shows.
WINDOW_S = 15 * 60
#: Buckets live this long past their end: the window, plus slack for clocks that disagree.
KEEP_S = WINDOW_S + 120
#: Histogram resolution: fields per doubling of the latency.
STEPS_PER_DOUBLING = 4
#: The last histogram field holds everything slower (2 ** 25 ms is over nine hours).
MAX_STEP = 25 * STEPS_PER_DOUBLING
#: Record statuses counted per lane, and their one-letter fields.
COUNTED = {"delivered": "d", "retrying": "r", "failed": "f"}


def latency_step(seconds: float) -> int:
    """The histogram field of a latency: the smallest i with seconds <= 2 ** (i / 4) ms."""
    ms = max(1.0, seconds * 1000.0)
    return min(MAX_STEP, math.ceil(math.log2(ms) * STEPS_PER_DOUBLING - 1e-9))


def step_upper_ms(step: int) -> float:
    return float(2 ** (step / STEPS_PER_DOUBLING))


def bucket_start(at: float) -> int:
    return int(at // BUCKET_S) * BUCKET_S


def record(
    client: redis.Redis, keys: Keys, lane: str, statuses: Mapping[str, int], *, latency_s: float, at: float
) -> None:
    """Count one recorded batch: ``statuses`` maps record statuses to how many got them."""
    fields = {f"{lane}:{COUNTED[s]}": n for s, n in statuses.items() if s in COUNTED and n}
    if not fields:
        return
    delivered = statuses.get("delivered", 0)
    if delivered:
        fields[f"{lane}:h{latency_step(latency_s)}"] = delivered
    start = bucket_start(at)
    key = keys.throughput(start)
    pipe = client.pipeline(transaction=False)
    for field, n in fields.items():
        pipe.hincrby(key, field, n)
    pipe.expireat(key, start + BUCKET_S + KEEP_S)
    pipe.execute()


def percentile_ms(histogram: Mapping[int, int], q: float) -> float | None:
    """The upper bound of the histogram step holding the q-th quantile; None when empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for step in sorted(histogram):
        seen += histogram[step]
        if seen >= rank:
            return round(step_upper_ms(step), 1)
    return round(step_upper_ms(max(histogram)), 1)


def read(
    client: redis.Redis, keys: Keys, lanes: Sequence[str], *, now: float, window_s: int = WINDOW_S
) -> dict[str, Any]:
    """Per-lane series over the window (oldest first, the current partial bucket last); latency
    percentiles per lane over the window, per bucket over all lanes, and over both; and the
    delivered rate of the last ten seconds or so."""
    last = bucket_start(now)
    starts = list(range(last - window_s, last + 1, BUCKET_S))
    pipe = client.pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(keys.throughput(start))
    raw_buckets = pipe.execute()
    series = {lane: {name: [0] * len(starts) for name in COUNTED} for lane in lanes}
    lane_hist: dict[str, Counter[int]] = {lane: Counter() for lane in lanes}
    p50: list[float | None] = []
    p99: list[float | None] = []
    for i, raw in enumerate(raw_buckets):
        bucket_hist: Counter[int] = Counter()
        for field_b, value_b in raw.items():
            lane, _, field = field_b.decode().partition(":")
            if lane not in series:
                continue
            n = int(value_b)
            if field.startswith("h"):
                lane_hist[lane][int(field[1:])] += n
                bucket_hist[int(field[1:])] += n
                continue
            for name, letter in COUNTED.items():
                if field == letter:
                    series[lane][name][i] = n
        p50.append(percentile_ms(bucket_hist, 0.50))
        p99.append(percentile_ms(bucket_hist, 0.99))
    window_hist: Counter[int] = sum(lane_hist.values(), Counter())
    recent = sum(series[lane]["delivered"][-1] + series[lane]["delivered"][-2] for lane in lanes)
    elapsed = BUCKET_S + max(0.0, now - last)
    return {
        "bucket_s": BUCKET_S,
        "start": starts[0],
        "at": now,
        "delivered_per_s": round(recent / elapsed, 2),
        "lanes": [
            {
                "lane": lane,
                **series[lane],
                "latency_ms": {
                    "p50": percentile_ms(lane_hist[lane], 0.50),
                    "p99": percentile_ms(lane_hist[lane], 0.99),
                },
            }
            for lane in lanes
        ],
        "latency_ms": {"p50": p50, "p99": p99},
        "window_latency_ms": {
            "p50": percentile_ms(window_hist, 0.50),
            "p99": percentile_ms(window_hist, 0.99),
        },
    }
