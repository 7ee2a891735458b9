"""Write the dispatcher's outcomes as they complete, a batch at a time, on a thread of its own.

Outcomes are written every ``record_batch`` of them or every ``record_flush_ms``, one write
per event attempt, whichever tickets (steps) they came from: with real endpoints a batch holds
the answers of many tickets at once (each hands its slow sends on and the next one starts);
written per ticket, a batch was several writes, and the mixed profile of the end-to-end
benchmark made three times the writes per delivery of the instant one. Transient ones, which
call for a retry, are gathered longer, for up to ``retry_gather_ms``: those of one event's
attempt are written together, one retry message for all of them, whichever steps and batches
of this process they came from. Real endpoints fail a few sends at a time (a 5xx here, a
timeout there); written per ticket and batch, each failure was a retry message of its own,
and each message a whole step to run again (load the event and its subscribers, build,
submit, wait, hand on).

The crash-safety rules hold as they are (see outcomes.py and engine.py): the retry message is
written before the records that say "retrying". An outcome held here is not recorded yet, so
its record still says what it said before the send, and its step waits for it or hands it on
(send.py) as it does for a send in flight: a process that dies holding it loses the outcome
only, and the delivery is sent again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from channels.base import Outcome, OutcomeKind
from notifyd.pipeline.events import LoadedEvent
from notifyd.pipeline.urgency import UrgentLive, pause_while
from notifyd.state.subscribers import StoredSubscriber

if TYPE_CHECKING:
    from notifyd.pipeline.dispatcher import Ticket

log = logging.getLogger("notifyd.pipeline.dispatcher")

RecordFn = Callable[[LoadedEvent, list[tuple[StoredSubscriber, Outcome]], int], None]
#: A delivery's outcome: its ticket, its index in the ticket, what its endpoint answered.
Entry = tuple["Ticket", int, Outcome]


@dataclass(slots=True)
class _Gathered:
    """One event attempt's transient outcomes, held until ``due`` (monotonic seconds)."""

    due: float
    entries: list[Entry] = field(default_factory=list)


class BatchedRecorder:
    """Writes outcomes in batches; gathers the transient ones of an event's attempt (see above)."""

    def __init__(self, record: RecordFn, *, batch: int, flush_s: float, gather_s: float = 0.0) -> None:
        self.record = record
        self.batch = max(1, batch)
        self.flush_s = flush_s
        self.gather_s = gather_s
        self._queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        #: (event ref, attempt) -> its gathered outcomes; in the order they were opened, which
        #: is the order they come due (each is held gather_s).
        self._gathered: dict[tuple[str, int], _Gathered] = {}
        #: The bulk dispatcher's recorder waits while urgent work is live (see urgency.py): its
        #: outcomes are recorded a little later.
        self.yield_to: UrgentLive | None = None
        self._thread = threading.Thread(target=self._run, name="notifyd-recorder", daemon=True)
        self._thread.start()

    def put(self, ticket: Ticket, index: int, outcome: Outcome) -> None:
        self._queue.put((ticket, index, outcome))

    def close(self, timeout: float = 10.0) -> None:
        """Write everything put so far, the gathered outcomes too, and stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._next_due())
            except queue.Empty:
                self._write_gathered(time.monotonic())
                continue
            if first is None:
                break
            if self.yield_to is not None:
                pause_while(self.yield_to)
            batch = [first]
            deadline = time.monotonic() + self.flush_s
            while len(batch) < self.batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    entry = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if entry is None:
                    stopping = True
                    break
                batch.append(entry)
            self._flush(batch)
            self._write_gathered(time.monotonic())
        self._write_gathered(None)

    def _next_due(self) -> float | None:
        """Seconds until the oldest gathered outcomes are due (None: nothing is gathered)."""
        for gathered in self._gathered.values():
            return max(0.0, gathered.due - time.monotonic())
        return None

    def _flush(self, batch: list[Entry]) -> None:
        by_attempt: dict[tuple[str, int], list[Entry]] = {}
        for entry in batch:
            ticket, _, outcome = entry
            key = (ticket.loaded.ref, ticket.attempt)
            if self.gather_s > 0 and outcome.kind is OutcomeKind.transient:
                gathered = self._gathered.get(key)
                if gathered is None:
                    gathered = self._gathered[key] = _Gathered(time.monotonic() + self.gather_s)
                gathered.entries.append(entry)
                if len(gathered.entries) >= self.batch:
                    del self._gathered[key]
                    self._write(gathered.entries)
                continue
            by_attempt.setdefault(key, []).append(entry)
        for entries in by_attempt.values():
            self._write(entries)

    def _write_gathered(self, now: float | None) -> None:
        """Write the gathered outcomes that are due at ``now`` (None: all of them)."""
        while self._gathered:
            key, gathered = next(iter(self._gathered.items()))
            if now is not None and gathered.due > now:
                return
            del self._gathered[key]
            self._write(gathered.entries)

    def _write(self, entries: list[Entry]) -> None:
        """Record outcomes of one event's attempt (of one ticket or several), then tell their tickets."""
        first = entries[0][0]
        results = [(ticket.subs[index], outcome) for ticket, index, outcome in entries]
        error: BaseException | None = None
        pause = 0.1
        while True:
            try:
                self.record(first.loaded, results, first.attempt)
                break
            except (redis.ConnectionError, redis.TimeoutError):
                # Redis is away: hold on to the outcomes until it is back.
                time.sleep(pause)
                pause = min(2.0, pause * 2)
            except Exception as exc:  # noqa: BLE001 - the steps that own the tickets re-raise it
                log.exception("recording %d outcomes failed", len(results))
                error = exc
                break
        by_ticket: dict[int, tuple[Ticket, list[int]]] = {}
        for ticket, index, _ in entries:
            by_ticket.setdefault(id(ticket), (ticket, []))[1].append(index)
        for ticket, indexes in by_ticket.values():
            ticket._recorded(indexes, error)
