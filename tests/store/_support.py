"""The store tests' steppable clock (events come from tests/support/events.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support.events import T0


class FakeClock:
    """A wall clock (seconds) that tests move by hand, backwards too."""

    def __init__(self, start: datetime = T0 + timedelta(hours=1)) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
