"""Bulk work gives its process up to urgent work: it waits, holding no GIL, while that is live.

A process runs the urgent lanes' steps (critical, high) beside the bulk lanes' (normal, low). The
bulk dispatcher's loop, the bulk steps' threads and the bulk recorder all wait while urgent work
is live, for at most ``YIELD_MAX_S`` at a time, so that the urgent step gets the GIL between its
Redis calls instead of in turns of the interpreter's 5 ms switch interval with each of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Whether urgent work is live in this process.
UrgentLive = Callable[[], bool]

#: The longest bulk work waits at a time (its sends in flight are still answered a few times a
#: second, never held near their timeout), and how often it looks again.
YIELD_MAX_S = 0.2
YIELD_STEP_S = 0.002


def pause_while(live: UrgentLive) -> None:
    """Sleep while ``live()`` says urgent work is live, for YIELD_MAX_S at most."""
    deadline = time.monotonic() + YIELD_MAX_S
    while live() and time.monotonic() < deadline:
        time.sleep(YIELD_STEP_S)
