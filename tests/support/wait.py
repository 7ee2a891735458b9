"""Waiting for the pipeline: one poll loop, and "wait until this event is done" once.

``wait_until(predicate)`` polls until the predicate holds and says whether it did.
``wait_done(source, event_id)`` waits for an event's summary to reach a final state and
returns it; ``source`` is a :class:`~notifyd.runtime.wiring.Runtime` (its tracker), an
``httpx.Client`` on the API, or a :class:`notifyd.client.Client`. When the time is up it
fails the test with the last summary it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

#: An event's states from which nothing more happens.
FINAL_STATES = ("done",)


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def summary_of(source: Any, event_id: str) -> dict[str, Any] | None:
    """The event's summary as ``GET /v1/events/{id}`` shows it, or None before it exists."""
    if isinstance(source, httpx.Client):
        response = source.get(f"/v1/events/{event_id}")
        return None if response.status_code == 404 else dict(response.json())
    tracker = getattr(source, "tracker", None)
    if tracker is not None:
        return tracker.summary_by_id(event_id)  # type: ignore[no-any-return]
    return dict(source.event(event_id))


def wait_done(
    source: Any, event_id: str, *, timeout: float = 15.0, states: Iterable[str] = FINAL_STATES
) -> dict[str, Any]:
    """Wait until the event's state is one of ``states``; return its summary."""
    wanted = tuple(states)
    last: list[dict[str, Any] | None] = [None]

    def reached() -> bool:
        last[0] = summary_of(source, event_id)
        return bool(last[0] and last[0].get("state") in wanted)

    if not wait_until(reached, timeout=timeout, interval=0.05):
        raise AssertionError(f"event {event_id} not {'/'.join(wanted)} after {timeout} s: {last[0]}")
    assert last[0] is not None
    return last[0]
