"""Deadlines for thousands of sends in flight: one timer per tick of the clock, not one per send.

``asyncio.timeout`` arms a timer per send and cancels it when the answer comes. With a window
of thousands of sends to endpoints that take their time, arming and cancelling those timers was
the largest cost that slow endpoints add to a delivery (~17 us of ~270 us of the event loop's
time per delivery in the end-to-end benchmark's mixed profile, against ~4 us with instant
endpoints). Here a send joins the set of its tick (its deadline rounded up to ``TICK_S``); one
timer per tick cancels the sends still in that set, and the send sees ``TimeoutError``, as with
``asyncio.timeout``. A deadline so fires up to ``TICK_S`` late, never early.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: How finely deadlines are kept: a send times out between its deadline and this much later.
TICK_S = 0.1


class Deadlines:
    """Runs awaitables on one event loop under deadlines kept in ticks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick_s: float = TICK_S) -> None:
        self.loop = loop
        self.tick_s = tick_s
        self._ticks: dict[int, set[asyncio.Task[object]]] = {}
        #: Tasks cancelled here whose cancellation has not been seen yet.
        self._expired: set[asyncio.Task[object]] = set()

    async def within(self, seconds: float, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` in the current task; TimeoutError if it takes longer than ``seconds``."""
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel, so no deadline to keep
            return await awaitable
        tick = math.ceil((self.loop.time() + seconds) / self.tick_s)
        members = self._ticks.get(tick)
        if members is None:
            members = self._ticks[tick] = set()
            self.loop.call_at(tick * self.tick_s, self._expire, tick)
        members.add(task)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                # Ours, and nobody else's (a shutdown's cancel still propagates as such).
                if task.uncancel() == 0:
                    raise TimeoutError from None
            raise
        finally:
            members.discard(task)
            if task in self._expired:  # cancelled here, but the awaitable finished all the same
                self._expired.discard(task)
                task.uncancel()

    def _expire(self, tick: int) -> None:
        for task in self._ticks.pop(tick, ()):
            if not task.done():
                self._expired.add(task)
                task.cancel()


def deadlines_for(loop: asyncio.AbstractEventLoop, kept: Deadlines | None) -> Deadlines:
    """``kept`` if it belongs to ``loop``, else a new one for it (an adapter may outlive a loop)."""
    return kept if kept is not None and kept.loop is loop else Deadlines(loop)
