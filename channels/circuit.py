"""Circuit breakers per target host and per provider.

A dead endpoint costs a connect timeout per delivery; with thousands of
subscribers on one dead host that is worker time the others need. After
``failure_threshold`` consecutive failures the circuit opens: deliveries to
that key return a transient "circuit open" outcome without touching the
network, with ``retry_after`` set to the time left. When the open period
ends, one delivery is let through as a probe (half-open); its success closes
the circuit, its failure opens it again for a longer period.

What counts as a failure is a failure to get an answer: a timeout, a refused
or reset connection (and SMTP's 421 "closing connection"). A host that
answers 500 quickly costs no worker time, and the pipeline's own retries and
quarantine see every one of those answers.

State is per adapter instance, so per worker process: no Redis round trip on
the hot path, and each process learns about a dead host on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from channels.backoff import Backoff
from channels.base import Outcome

#: Consecutive failures that open a circuit.
DEFAULT_FAILURE_THRESHOLD = 5
#: How long a circuit stays open the first time.
DEFAULT_OPEN_S = 30.0
#: Each failed probe doubles the open period, up to this.
DEFAULT_MAX_OPEN_S = 300.0
#: Hosts whose latest success is remembered; past this many the memory starts afresh.
MAX_REMEMBERED_HOSTS = 100_000
#: A probe that never reports back (its task was cancelled) frees the slot after this.
DEFAULT_PROBE_TIMEOUT_S = 60.0


class CircuitState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    state: CircuitState = CircuitState.closed
    open_until: float = 0.0
    open_s: float = 0.0
    probe_started: float | None = None


class CircuitBreaker:
    """A set of circuits keyed by host (``"https://hooks.example.com:443"``) or provider name."""

    def __init__(
        self,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        open_s: float = DEFAULT_OPEN_S,
        max_open_s: float = DEFAULT_MAX_OPEN_S,
        probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = max(1, failure_threshold)
        self.open_s = open_s
        self.max_open_s = max(open_s, max_open_s)
        self._backoff = Backoff(first=open_s, cap=self.max_open_s)
        self.probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._last_ok: dict[str, float] = {}

    def state(self, key: str) -> CircuitState:
        circuit = self._circuits.get(key)
        if circuit is None:
            return CircuitState.closed
        if circuit.state is CircuitState.open and self._clock() >= circuit.open_until:
            return CircuitState.half_open
        return circuit.state

    def not_closed(self) -> list[tuple[str, CircuitState, float]]:
        """``(key, state, seconds until the next probe may go)`` of every open or half-open circuit."""
        now = self._clock()
        found: list[tuple[str, CircuitState, float]] = []
        for key, circuit in self._circuits.copy().items():  # a copy: the send loop runs on another thread
            if circuit.state is CircuitState.closed:
                continue
            expired = circuit.state is CircuitState.open and now >= circuit.open_until
            state = CircuitState.half_open if expired else circuit.state
            found.append((key, state, round(max(0.0, circuit.open_until - now), 3)))
        return found

    def before(self, key: str) -> Outcome | None:
        """``None`` when a delivery to ``key`` may go ahead; else the outcome to return instead.

        Call it right before touching the network (after any concurrency
        limit), so deliveries queued behind the ones that opened the circuit
        are short-circuited too.
        """
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state is CircuitState.closed:
            return None
        now = self._clock()
        if circuit.state is CircuitState.open:
            if now < circuit.open_until:
                return Outcome.transient("circuit open", retry_after=round(circuit.open_until - now, 3))
            circuit.state = CircuitState.half_open
            circuit.probe_started = None
        # Half-open: exactly one probe at a time; the rest wait a little.
        if circuit.probe_started is not None and now - circuit.probe_started < self.probe_timeout_s:
            return Outcome.transient("circuit open", retry_after=round(min(self.open_s, 5.0), 3))
        circuit.probe_started = now
        return None

    def now(self) -> float:
        return self._clock()

    def record(self, key: str, *, ok: bool, started: float | None = None) -> None:
        """Report how a delivery that :meth:`before` let through went, as far as the host is concerned.

        ``started`` (from :meth:`now`) is when the delivery was sent. A failure of a delivery
        sent before the host's latest success does not count: the host has answered since,
        so it is one request that hung, not a host that is gone.
        """
        circuit = self._circuits.get(key)
        if ok:
            if circuit is not None:
                del self._circuits[key]
            if len(self._last_ok) >= MAX_REMEMBERED_HOSTS:
                self._last_ok.clear()
            self._last_ok[key] = self._clock()
            return
        if started is not None and started < self._last_ok.get(key, float("-inf")):
            return
        if circuit is None:
            circuit = self._circuits[key] = _Circuit()
        now = self._clock()
        if circuit.state is CircuitState.half_open:
            circuit.open_s = self._backoff.next(circuit.open_s)
            self._open(circuit, now)
            return
        if circuit.state is CircuitState.open:
            # A delivery that started before the circuit opened; it changes nothing.
            return
        circuit.failures += 1
        if circuit.failures >= self.failure_threshold:
            circuit.open_s = self._backoff.next()
            self._open(circuit, now)

    def _open(self, circuit: _Circuit, now: float) -> None:
        circuit.state = CircuitState.open
        circuit.open_until = now + circuit.open_s
        circuit.probe_started = None
        circuit.failures = 0
