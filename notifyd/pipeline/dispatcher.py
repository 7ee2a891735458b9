"""The per-process send loops: every delivery of every step goes through a window of send slots.

A process has two dispatchers, each on an event loop (a thread) of its own:
one for the urgent lanes (``critical``, ``high``) and one for the others
(:func:`build_pair`). An urgent send so never waits for a slot, a connection
or a turn of a loop that ``normal`` or ``low`` sends hold. While urgent work
is live in the process (an urgent step running, or urgent sends queued or in
flight), the bulk dispatcher starts no sends and its loop pauses for most of
each turn, so the process's CPU (and the GIL) go to the urgent work first.

A step (a shard, a retry) builds its messages on its worker thread and submits
them as one :class:`Ticket`. The dispatcher starts them one send per slot, and
a freed slot goes to the highest lane that is waiting:

- **Lanes.** Each lane holds a rotation of events, and each event a rotation
  of its tickets; a slot takes the next delivery of the next event, so events
  of one lane share the lane's slots equally, however many shards each has
  submitted (a small page's event is not stuck behind a large fan-out).
- **Window and reserve.** At most ``dispatch_window`` sends are in flight;
  ``normal`` and ``low`` may use all but ``dispatch_reserve`` of them, so a
  ``critical`` or ``high`` delivery never waits for a ``low`` send to finish.
- **Hosts.** At most ``host_concurrency`` sends to one host (or provider) are
  in flight process-wide; a host whose answers come more slowly than the
  others' gets fewer slots (the cap shrinks with its latency), so it cannot
  take the window. Urgent lanes get a few slots more per host.
- **Loop lag.** When the loop falls behind (CPU saturated), the low lanes'
  share of the window shrinks, so urgent sends and the loop itself keep up;
  but never below what the endpoints' own latency needs at the rate achieved
  (sends waiting on a 500 ms endpoint cost the loop nothing while they wait,
  and fewer of them would only lower the rate, not the loop's work).

Outcomes go, as they complete, to a :class:`BatchedRecorder` thread that
writes them in batches (by count, or every few tens of milliseconds; those that
call for a retry gathered a little longer, see recorder.py) and then tells the
ticket. No chunk barrier: a slow delivery holds only its own slot.

A step may :meth:`Dispatcher.withdraw` its ticket: the deliveries that have not
started are dropped here, and will not be sent by this process (the step hands
them on, durably, or fails and runs again). Those that started still finish
and are recorded.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from channels.base import Adapter, Message, Outcome
from notifyd.pipeline.asyncrunner import AsyncRunner
from notifyd.pipeline.events import LoadedEvent
from notifyd.pipeline.recorder import BatchedRecorder, RecordFn
from notifyd.pipeline.urgency import UrgentLive, pause_while
from notifyd.runtime.settings import PRIORITIES, URGENT_LANES, Settings
from notifyd.state.subscribers import StoredSubscriber

RANK = {lane: rank for rank, lane in enumerate(PRIORITIES)}
#: Lanes of this rank or lower (critical, high: ``URGENT_LANES``) are the urgent dispatcher's.
URGENT_RANK = max(RANK[lane] for lane in URGENT_LANES)
#: A host whose latency average is above this, and above SLOWER_THAN_TYPICAL times the typical
#: host's, gets proportionally fewer slots. Only slower than the others: when every host is slow
#: (or the loop's own lag slows every answer down), fewer slots for all would protect nobody.
SLOW_HOST_S = 1.0
SLOWER_THAN_TYPICAL = 2.0
#: How often the endpoints' own latency (see ``Dispatcher._need``) is measured again, in lag
#: probes (the typical host latency is measured at every probe).
LATENCY_PROBES = 5
#: The in-flight sends the endpoints' own latency needs at the current rate, times this, are
#: never given up for the loop's lag (see ``Dispatcher._need``).
LATENCY_HEADROOM = 2.0
#: One send counts in its host's latency average for at most this many times the average, plus
#: SLOW_HOST_S: a host that answers in 100 ms but lets 1% hang to the 10 s timeout is not slow,
#: and each hang (+2 s on the average, uncapped) had marked it slow for a few sends, its
#: deliveries parked and taken again (~4% of the loop's time per delivery on the mixed profile).
#: A host that turns slow is still seen within ten or so answers.
LATENCY_SAMPLE_CAP = 4.0
#: A slow host keeps at least this many slots.
MIN_HOST_SLOTS = 4
#: How often the loop's lag is measured, and the lag that shrinks (or lets grow) the low lanes' share.
LAG_PROBE_S = 0.05
LAG_HIGH_S = 0.1
LAG_LOW_S = 0.02
#: Sends started per turn of the loop; then the loop runs the others' steps before more start.
STARTS_PER_TURN = 64
#: The low lanes keep at least this many slots however far the loop lags.
MIN_LOW_SLOTS = 32
#: The low lanes' share starts here and grows while the loop keeps up (a slow start: a
#: thousand requests opened at once to an instant endpoint only queue up in the loop).
INITIAL_LOW_SLOTS = 64
#: A ticket sized by :meth:`Dispatcher.budget` still gets at least this many deliveries.
MIN_BUDGET = 128


AdapterFor = Callable[[str], Adapter]


#: Where each delivery of a ticket is (``Ticket._state``): queued in a lane (or a host's parking,
#: or not accepted yet), held until its provider send time, started, or withdrawn unsent.
QUEUED, HELD, SENT, WITHDRAWN = range(4)


class Ticket:
    """One step's deliveries in the dispatcher: which have started, which are recorded."""

    def __init__(
        self,
        loaded: LoadedEvent,
        attempt: int,
        subs: Sequence[StoredSubscriber],
        messages: Sequence[Message],
        at: Sequence[float | None] | None = None,
    ) -> None:
        self.loaded = loaded
        #: Per delivery, the epoch time before which it must not be sent (a provider's rate).
        self.at = at
        self.lane = loaded.event.lane
        self.attempt = attempt
        self.subs = subs
        self.messages = messages
        self.started = 0
        self.recorded = 0
        self.error: BaseException | None = None
        #: Of its deliveries, how many sit in a lane or a host's parking (not timers, not started).
        self.queued = 0
        #: Per delivery: QUEUED, HELD, SENT or WITHDRAWN; written on the loop only.
        self._state = bytearray(len(subs))
        self._done = bytearray(len(subs))
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self.subs)

    def _started(self, index: int) -> None:
        with self._cond:
            self._state[index] = SENT
            self.started += 1
            if self.started == len(self.subs):
                self._cond.notify_all()

    def _recorded(self, indexes: Sequence[int], error: BaseException | None = None) -> None:
        with self._cond:
            for i in indexes:
                self._done[i] = 1
            self.recorded += len(indexes)
            if error is not None and self.error is None:
                self.error = error
            self._cond.notify_all()

    def wait(self, timeout: float | None, *, started: int | None = None) -> bool:
        """Wait until every delivery is recorded (or, with ``started``, that many have started)."""
        n = len(self.subs)

        def ready() -> bool:
            return self.recorded == n or (started is not None and self.started >= started)

        with self._cond:
            return self._cond.wait_for(ready, timeout)

    @property
    def finished(self) -> bool:
        return self.recorded == len(self.subs)

    def unrecorded(self) -> list[StoredSubscriber]:
        """Those not withdrawn whose outcome is not recorded yet."""
        with self._cond:
            return [
                s
                for s, state, done in zip(self.subs, self._state, self._done, strict=True)
                if not done and state != WITHDRAWN
            ]

    def held_until(self) -> float | None:
        """The latest provider send time of those still held for it (epoch seconds), if any."""
        times = [self.at[i] for i, state in enumerate(self._state) if state == HELD] if self.at else []
        return max((t for t in times if t is not None), default=None)


@dataclass(slots=True)
class _Item:
    ticket: Ticket
    index: int
    adapter: Adapter
    key: str
    rank: int
    #: Whether the send holds the adapter's own limits (see Dispatcher._holds_limits).
    limits: bool


class _EventQueue:
    """One event's tickets in a lane, taken in rotation."""

    __slots__ = ("key", "tickets")

    def __init__(self, key: str) -> None:
        self.key = key
        self.tickets: deque[deque[_Item]] = deque()


@dataclass(slots=True)
class _Host:
    active: int = 0
    latency: float = 0.0
    parked: list[tuple[int, int, _Item]] = field(default_factory=list)

    def observe(self, took: float) -> None:
        """One send's time in the host's latency average (one hang among quick answers moves
        it a little, a host that turns slow soon: LATENCY_SAMPLE_CAP)."""
        if self.latency == 0.0:
            self.latency = took
            return
        sample = min(took, LATENCY_SAMPLE_CAP * self.latency + SLOW_HOST_S)
        self.latency = 0.8 * self.latency + 0.2 * sample


class Dispatcher:
    def __init__(
        self,
        runner: AsyncRunner,
        adapter_for: AdapterFor,
        recorder: BatchedRecorder,
        *,
        window: int,
        reserve: int,
        host_concurrency: int,
        yield_to: UrgentLive | None = None,
    ) -> None:
        self.runner = runner
        #: For the bulk dispatcher: urgent work is live, start nothing and give the CPU up.
        self.yield_to = yield_to
        self.adapter_for = adapter_for
        self.recorder = recorder
        self.window = max(1, window)
        self.low_window = max(1, self.window - reserve)
        self.host_concurrency = max(1, host_concurrency)
        #: The slots more per host that the urgent lanes get.
        self.urgent_host_extra = max(1, self.host_concurrency // 4)
        self.low_limit = min(self.low_window, INITIAL_LOW_SLOTS)
        self.in_flight = 0
        self.waiting = 0
        #: Critical and high deliveries queued (due now) or in flight in this process.
        self.urgent = 0
        #: Deliveries withdrawn unsent, since the start (steps that handed them on, or failed).
        self.withdrawn = 0
        #: Sends started per second while deliveries were waiting (what the window achieves), or
        #: None before it is known; and the starts counted since the last probe.
        self.start_rate: float | None = None
        self._starts = 0
        #: The endpoints' own latency (seconds): the sends' mean latency less the loop's mean lag,
        #: over the last LATENCY_PROBES probes; and the sums of those so far.
        self.base_latency = 0.0
        self._took = [0.0, 0]
        self._lags = 0.0
        #: The lower quartile of the hosts' latencies: what a host that is not slow answers in.
        self.typical_latency = 0.0
        self._probes = 0
        self._lanes: list[deque[_EventQueue]] = [deque() for _ in PRIORITIES]
        #: Per lane, event id -> its queue in the lane's rotation.
        self._events: list[dict[str, _EventQueue]] = [{} for _ in PRIORITIES]
        self._hosts: dict[str, _Host] = {}
        self._unblocked: set[str] = set()
        self._order = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._pump_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Times this loop waited for urgent work outside its lag probe (yield_now).
        self._loop_pauses = 0

    # -- from any thread -------------------------------------------------------------------

    def submit(self, ticket: Ticket) -> None:
        loop = self.runner.loop
        loop.call_soon_threadsafe(self._accept, ticket)

    def withdraw(self, ticket: Ticket, *, held: bool = True) -> list[int]:
        """Stop the ticket's deliveries that have not started; return their indexes.

        Runs on the loop (waiting for it, with the runner's deadline): once it returns, none of
        those deliveries is sent by this process. Those that started still finish and are recorded.
        ``held=False`` leaves those held for their provider send time: they go at that time.
        """
        return self.runner.call(lambda: self._withdraw(ticket, held))

    def budget(self, slice_s: float) -> int | None:
        """How many of a new ticket's deliveries this dispatcher can expect to start within one
        time slice, beside those already waiting (None: no limit, it keeps up or does not know
        yet). Only the bulk dispatcher sizes tickets; a step hands the rest on unbuilt."""
        if self.yield_to is None or self.start_rate is None or not self.waiting:
            return None
        return max(MIN_BUDGET, int(self.start_rate * slice_s) - self.waiting)

    def yield_now(self) -> None:
        """From any thread: this loop yields to urgent work at its next turn, not at its next
        lag probe (see _watch_lag)."""
        loop = self._loop
        if self.yield_to is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._pause_loop)

    def _pause_loop(self) -> None:
        if self.yield_to is not None and self.yield_to():
            self._loop_pauses += 1  # the lag probe does not count this wait as the loop's lag
            pause_while(self.yield_to)

    def yield_to_urgent(self) -> None:
        """For a bulk step's thread, as its step starts and before it builds its messages (and
        for this loop, see yield_now): wait while urgent work is live (see urgency.py)."""
        if self.yield_to is not None:
            pause_while(self.yield_to)

    def stats(self) -> dict[str, int]:
        return {
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "urgent": self.urgent,
            "low_limit": self.low_limit,
            "withdrawn": self.withdrawn,
        }

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is waiting or in flight (for a clean shutdown)."""
        deadline = time.monotonic() + timeout
        while self.in_flight or self.waiting:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, drain_s: float) -> None:
        """Let what is waiting or in flight finish and be recorded, then stop the lag probe."""
        self.drain(drain_s)
        monitor, self._monitor = self._monitor, None
        if monitor is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(monitor.cancel)
        self.recorder.close()

    # -- on the loop -----------------------------------------------------------------------

    def _withdraw(self, ticket: Ticket, held: bool) -> list[int]:
        states = ticket._state
        queued = [i for i, state in enumerate(states) if state == QUEUED]
        timed = [i for i, state in enumerate(states) if state == HELD] if held else []
        for i in queued + timed:
            states[i] = WITHDRAWN
        # Its items stay where they are and are skipped when reached; the counts drop now.
        self.waiting -= len(queued) + len(timed)
        self.withdrawn += len(queued) + len(timed)
        ticket.queued -= len(queued)
        if RANK.get(ticket.lane, len(PRIORITIES) - 1) <= URGENT_RANK:
            self.urgent -= len(queued)
        return sorted(queued + timed)

    def _enqueue(self, rank: int, items: deque[_Item]) -> None:
        """Put a ticket's due deliveries into its event's place in the lane's rotation."""
        ticket = items[0].ticket
        ticket.queued += len(items)
        if rank <= URGENT_RANK:
            self.urgent += len(items)
        key = ticket.loaded.ref  # one page's event (another page may use the same id)
        events = self._events[rank]
        group = events.get(key)
        if group is None:
            group = events[key] = _EventQueue(key)
            self._lanes[rank].append(group)
        group.tickets.append(items)

    def _accept(self, ticket: Ticket) -> None:
        if self._monitor is None:
            self._loop = asyncio.get_running_loop()
            self._monitor = self._loop.create_task(self._watch_lag())
        rank = RANK.get(ticket.lane, len(PRIORITIES) - 1)
        items: deque[_Item] = deque()
        now = time.time()
        limits: dict[str, bool] = {}
        for index, message in enumerate(ticket.messages):
            channel = ticket.subs[index].channel
            adapter = self.adapter_for(channel)
            if channel not in limits:
                limits[channel] = self._holds_limits(adapter)
            key = f"{channel}|{adapter.slot_key(message)}"
            item = _Item(ticket, index, adapter, key, rank, limits[channel])
            when = ticket.at[index] if ticket.at is not None else None
            if when is not None and when > now:
                ticket._state[index] = HELD
                self.waiting += 1
                assert self._loop is not None
                self._loop.call_later(when - now, self._release, item)
            else:
                items.append(item)
        if items:
            self.waiting += len(items)
            self._enqueue(rank, items)
            self._pump()

    def _holds_limits(self, adapter: Adapter) -> bool:
        """Whether this adapter's own limits may bind below this dispatcher's window and host caps,
        so its sends must hold them: an SMS provider's 16 connections do; the webhook adapter's,
        set to the window (notifyd/pipeline/adapters.py), never do, and held they only counted
        each send again (a lock, a semaphore and a parsed target per send)."""
        most_per_host = self.host_concurrency + self.urgent_host_extra
        return (adapter.concurrency is not None and adapter.concurrency < self.window) or (
            adapter.slot_concurrency is not None and adapter.slot_concurrency < most_per_host
        )

    def _release(self, item: _Item) -> None:
        """A delivery held for its provider's rate has come due: it joins its lane."""
        states = item.ticket._state
        if states[item.index] == WITHDRAWN:
            return
        states[item.index] = QUEUED
        self._enqueue(item.rank, deque((item,)))
        self._pump()

    def _cap(self, host: _Host, rank: int) -> int:
        cap = self.host_concurrency
        slow = max(SLOW_HOST_S, SLOWER_THAN_TYPICAL * self.typical_latency)
        if host.latency > slow:
            cap = max(MIN_HOST_SLOTS, int(cap * slow / host.latency))
        if rank <= URGENT_RANK:
            cap += self.urgent_host_extra
        return cap

    def _may_start(self, rank: int) -> bool:
        if rank <= URGENT_RANK:
            return self.in_flight < self.window
        # While critical or high work is live here, no normal or low send starts: the loop's
        # time (and the process's CPU) goes to the urgent work first.
        if self.urgent or (self.yield_to is not None and self.yield_to()):
            return False
        return self.in_flight < self.low_limit

    def _pump(self) -> None:
        self._pump_scheduled = False
        for _ in range(STARTS_PER_TURN):
            if self.in_flight >= self.window:
                return
            item = self._take()
            if item is None:
                return
            self._start(item)
        # Yield to the loop: the sends just started get to write their requests before
        # more start, so the first of a burst reaches its endpoint in milliseconds.
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _take(self) -> _Item | None:
        # Parked deliveries whose host has room again, the highest lane first.
        if self._unblocked:
            best: tuple[int, str] | None = None
            for key in list(self._unblocked):
                host = self._hosts.get(key)
                if host is None or not host.parked:
                    self._unblocked.discard(key)
                    continue
                rank = host.parked[0][0]
                if host.active < self._cap(host, rank) and self._may_start(rank):
                    if best is None or rank < best[0]:
                        best = (rank, key)
                elif host.active >= self._cap(host, rank):
                    self._unblocked.discard(key)
            if best is not None:
                host = self._hosts[best[1]]
                item = heapq.heappop(host.parked)[2]
                if not host.parked:
                    self._unblocked.discard(best[1])
                if item.ticket._state[item.index] == WITHDRAWN:
                    return self._take()
                return item
        for rank, lane in enumerate(self._lanes):
            if not self._may_start(rank):
                return None
            events = self._events[rank]
            while lane:
                group = lane[0]
                tickets = group.tickets
                items = tickets[0]
                item = items.popleft()
                if items:
                    tickets.rotate(-1)  # within an event, its tickets take turns
                else:
                    tickets.popleft()
                if tickets:
                    lane.rotate(-1)  # the next delivery comes from the next event: interleaved
                else:
                    lane.popleft()
                    del events[group.key]
                if item.ticket._state[item.index] == WITHDRAWN:
                    continue
                host = self._hosts.get(item.key)
                if host is None:
                    host = self._hosts[item.key] = _Host()
                if host.active >= self._cap(host, rank):
                    heapq.heappush(host.parked, (rank, next(self._order), item))
                    continue
                return item
        return None

    def _start(self, item: _Item) -> None:
        self._starts += 1
        self.in_flight += 1
        self.waiting -= 1
        host = self._hosts[item.key]
        host.active += 1
        item.ticket.queued -= 1
        item.ticket._started(item.index)
        assert self._loop is not None
        task = self._loop.create_task(self._send(item, host))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, item: _Item, host: _Host) -> None:
        assert self._loop is not None
        started = self._loop.time()
        outcome: Outcome
        try:
            outcome = await item.adapter.send_one(item.ticket.messages[item.index], limits=item.limits)
        except asyncio.CancelledError:
            outcome = Outcome.transient("cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - one broken send must not stop the loop
            outcome = Outcome.transient(f"adapter error: {type(exc).__name__}")
        finally:
            took = self._loop.time() - started
            self._took[0] += took
            self._took[1] += 1
            host.observe(took)
            host.active -= 1
            self.in_flight -= 1
            if item.rank <= URGENT_RANK:
                self.urgent -= 1
            self.recorder.put(item.ticket, item.index, outcome)
            if host.parked:
                self._unblocked.add(item.key)
            elif host.active == 0 and host.latency <= SLOW_HOST_S:
                self._hosts.pop(item.key, None)
            self._pump()

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, pauses = loop.time(), self._loop_pauses
            await asyncio.sleep(LAG_PROBE_S)
            elapsed = loop.time() - before
            lag = elapsed - LAG_PROBE_S
            starts, self._starts = self._starts, 0
            live = self.yield_to
            urgent = live is not None and live()
            if urgent or self._loop_pauses != pauses:
                # Neither the rate nor the lag of a turn that waited for urgent work is the
                # loop's own: it is not measured.
                if urgent and live is not None:
                    pause_while(live)
                self._starts = 0
                continue
            if self.waiting and starts:  # only a backlog shows what the window achieves
                rate = starts / elapsed
                self.start_rate = rate if self.start_rate is None else 0.8 * self.start_rate + 0.2 * rate
            if self.waiting:
                self._pump()  # what urgent work held back (nothing in flight here pumps for it)
            self._probes += 1
            self._lags += max(0.0, lag)
            self._measure_latencies(base=self._probes % LATENCY_PROBES == 0)
            need = self._need(lag)
            full = self.in_flight >= self.low_limit and self.low_limit < self.low_window
            if full and (need > self.low_limit or lag < LAG_LOW_S):
                # Straight to what the endpoints' latency needs (a slow start that doubles each
                # probe), or one step more while the loop keeps up.
                grown = max(need, self.low_limit + max(16, self.low_window // 16))
                self.low_limit = min(self.low_window, grown)
                self._pump()
            elif lag > LAG_HIGH_S:
                shrunk = max(min(MIN_LOW_SLOTS, self.low_window), int(self.low_limit * 0.75))
                self.low_limit = max(min(self.low_limit, need), shrunk)

    def _measure_latencies(self, *, base: bool) -> None:
        if base:
            total, sends = self._took
            if sends:
                self.base_latency = max(0.0, total / sends - self._lags / LATENCY_PROBES)
            self._took, self._lags = [0.0, 0], 0.0
        latencies = sorted(h.latency for h in self._hosts.values())
        self.typical_latency = latencies[len(latencies) // 4] if latencies else 0.0

    def _need(self, lag: float) -> int:
        """The sends in flight that the endpoints' own latency needs at the rate achieved
        (Little's law), with headroom; 0 when the loop's lag, not the endpoints, is what the
        sends wait for.

        The endpoints' latency is the sends' mean latency over the last 250 ms less the loop's
        mean lag over it (every send waits that long for the loop to see its answer). A mean,
        not a median: a few sends that hang to the timeout hold slots as long as many quick
        ones do. When the loop lags more than the endpoints take, the sends in flight mostly
        wait for the loop, and fewer of them is what helps; when it lags less, they mostly wait
        for their endpoints, at no cost to the loop, and fewer of them would lower the rate
        without lowering the loop's work.
        """
        base = self.base_latency
        if self.start_rate is None or not self.waiting or lag >= base:
            return 0
        return min(self.low_window, int(self.start_rate * base * LATENCY_HEADROOM))

    def busy(self) -> bool:
        """Whether deliveries are queued or in flight here (read from any thread)."""
        return bool(self.in_flight or self.waiting)


class UrgentSteps:
    """Counts the urgent lanes' steps running in this process (read from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        #: Called as an urgent step starts: the bulk dispatcher yields at once, not at its next
        #: probe (up to LAG_PROBE_S later).
        self.on_start: Callable[[], None] | None = None

    def __enter__(self) -> UrgentSteps:
        with self._lock:
            self.running += 1
        if self.on_start is not None:
            self.on_start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.running -= 1


def build(
    settings: Settings,
    runner: AsyncRunner,
    adapter_for: AdapterFor,
    record: RecordFn,
    *,
    window: int | None = None,
    reserve: int | None = None,
    yield_to: UrgentLive | None = None,
) -> Dispatcher:
    recorder = BatchedRecorder(
        record,
        batch=settings.record_batch,
        flush_s=settings.record_flush_ms / 1000,
        gather_s=settings.retry_gather_ms / 1000,
    )
    return Dispatcher(
        runner,
        adapter_for,
        recorder,
        window=settings.dispatch_window if window is None else window,
        reserve=settings.dispatch_reserve if reserve is None else reserve,
        host_concurrency=settings.host_concurrency,
        yield_to=yield_to,
    )


@dataclass(frozen=True)
class Dispatchers:
    """A process's two dispatchers; :meth:`for_lane` says which one sends a lane's deliveries."""

    urgent: Dispatcher
    bulk: Dispatcher
    steps: UrgentSteps

    def for_lane(self, lane: str) -> Dispatcher:
        return self.urgent if RANK.get(lane, len(PRIORITIES) - 1) <= URGENT_RANK else self.bulk

    def close(self, drain_s: float) -> None:
        self.urgent.close(drain_s)
        self.bulk.close(drain_s)


def build_pair(
    settings: Settings,
    urgent: tuple[AsyncRunner, AdapterFor],
    bulk: tuple[AsyncRunner, AdapterFor],
    record: RecordFn,
) -> Dispatchers:
    """The urgent lanes' dispatcher (the whole window) and the others' (the window less the
    reserve), each on its own loop; the bulk one yields while urgent work is live."""
    steps = UrgentSteps()
    first = build(settings, *urgent, record, reserve=0)

    def urgent_live() -> bool:
        return bool(steps.running) or first.busy()

    window = settings.bulk_dispatch_window()
    second = build(settings, *bulk, record, window=window, reserve=0, yield_to=urgent_live)
    steps.on_start = second.yield_now
    second.recorder.yield_to = urgent_live
    return Dispatchers(first, second, steps)
