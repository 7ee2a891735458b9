"""When to try a failed delivery again: a jittered exponential schedule per channel."""

from __future__ import annotations

import random
from collections.abc import Sequence

#: The longest wait a Retry-After can impose; dramatiq refuses delays of 7 days or more.
MAX_RETRY_AFTER_S = 24 * 3600


def next_delay(
    schedule: Sequence[float],
    attempt: int,
    *,
    jitter: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until attempt ``attempt + 1``, or None when the schedule is exhausted.

    ``attempt`` is the number of the attempt that just failed (1 for the first).
    The target's Retry-After is honoured: we never come back sooner than it asks.
    """
    if attempt < 1 or attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    spread = base * jitter
    delay = (rng or random).uniform(base - spread, base + spread)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return max(0.0, delay)
