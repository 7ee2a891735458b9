"""The one owner of growing pauses: how long to wait after another failure.

Three places wait longer after each failure: a circuit's open period
(``channels/circuit.py``), a peer region that does not answer
(``notifyd/runtime/replication.py``) and a re-enqueue that waits out a Redis
outage (``notifyd/runtime/broker.py``). They all take their next pause from
:class:`Backoff`. It lives here because ``channels/`` imports nothing of
``notifyd``, while ``notifyd`` may import ``channels``.

Delivery retries are not a backoff: they follow the per-channel schedule in
the settings (``NOTIFYD_RETRY_SCHEDULE_<CHANNEL>``), see ``notifyd/pipeline/retry.py``.
notifyd does not use tenacity: two of the three waits are state kept between
calls (a circuit, a peer's next try time), not a loop around one call, and a
value object serves all three alike (docs/operations.md says more).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential pauses: ``first``, then ``factor`` times the previous one, never above ``cap``."""

    first: float
    cap: float
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.first <= 0 or self.cap < self.first or self.factor < 1:
            raise ValueError("a backoff needs 0 < first <= cap and factor >= 1")

    def next(self, previous: float | None = None) -> float:
        """The pause after ``previous`` (``None``, or 0, for the first failure)."""
        if not previous:
            return self.first
        return min(self.cap, max(self.first, previous * self.factor))
