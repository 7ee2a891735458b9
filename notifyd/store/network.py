"""An in-memory :class:`~notifyd.store.sync.Transport` that drops, duplicates, reorders and delays.

Everything random comes from one seeded RNG, so a failing run can be replayed.  Messages are
delivered either by hand (:meth:`LossyNetwork.deliver_due`, :meth:`deliver_all`) or by a
background thread (:meth:`start`/:meth:`stop`).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    bytes_sent: int = 0
    bytes_by_kind: dict[str, int] = field(default_factory=dict)


class LossyNetwork:
    def __init__(
        self,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay_s: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.drop = drop
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay_s = delay_s
        self.clock = clock
        self.rng = random.Random(seed)
        self.stats = NetworkStats()
        self._receivers: dict[str, Callable[[str, bytes], None]] = {}
        self._queue: list[tuple[float, int, str, str, bytes]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def endpoint(self, node: str) -> LossyTransport:
        return LossyTransport(self, node)

    def _register(self, node: str, callback: Callable[[str, bytes], None]) -> None:
        with self._lock:
            self._receivers[node] = callback

    def _send(self, sender: str, peer: str, payload: bytes) -> None:
        with self._lock:
            self.stats.sent += 1
            self.stats.bytes_sent += len(payload)
            if self.rng.random() < self.drop:
                self.stats.dropped += 1
                return
            copies = 1
            if self.rng.random() < self.duplicate:
                copies = 2
                self.stats.duplicated += 1
            now = self.clock()
            for _ in range(copies):
                lo, hi = self.delay_s
                due = now + (self.rng.uniform(lo, hi) if hi > 0 else 0.0)
                if self.rng.random() < self.reorder:
                    # Hold this one back so messages sent after it overtake it.
                    due += max(hi, 0.001) * (1 + self.rng.random())
                heapq.heappush(self._queue, (due, next(self._order), sender, peer, payload))

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _pop_due(self, now: float | None) -> tuple[str, str, bytes] | None:
        with self._lock:
            if not self._queue or (now is not None and self._queue[0][0] > now):
                return None
            _, _, sender, peer, payload = heapq.heappop(self._queue)
        return sender, peer, payload

    def deliver_due(self, now: float | None = None) -> int:
        """Deliver messages whose delay has passed (all of them when ``now`` is None)."""
        limit = self.clock() if now is None else now
        delivered = 0
        while (item := self._pop_due(limit)) is not None:
            self._dispatch(*item)
            delivered += 1
        return delivered

    def deliver_all(self, max_messages: int = 1_000_000) -> int:
        """Deliver everything queued, and whatever that provokes (acks), ignoring delays."""
        delivered = 0
        while delivered < max_messages and (item := self._pop_due(None)) is not None:
            self._dispatch(*item)
            delivered += 1
        return delivered

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def _dispatch(self, sender: str, peer: str, payload: bytes) -> None:
        receiver = self._receivers.get(peer)
        if receiver is not None:
            self.stats.delivered += 1
            receiver(sender, payload)

    def start(self, poll_s: float = 0.001) -> LossyNetwork:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(poll_s,), name="lossy-network", daemon=True
            )
            self._thread.start()
        return self

    def _run(self, poll_s: float) -> None:
        while not self._stop.is_set():
            if not self.deliver_due():
                self._stop.wait(poll_s)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class LossyTransport:
    def __init__(self, network: LossyNetwork, node: str) -> None:
        self.network = network
        self.node = node

    def send(self, peer: str, payload: bytes) -> None:
        self.network._send(self.node, peer, payload)

    def set_receiver(self, callback: Callable[[str, bytes], None]) -> None:
        self.network._register(self.node, callback)
