"""An instant in-process channel that records what it was handed, for pipeline tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from channels.base import Adapter, Message, Outcome


@dataclass(frozen=True)
class Sent:
    channel: str
    delivery_id: str
    event_id: str
    subscriber_id: str
    target: str
    attempt: int
    at: float


class RecordingAdapter(Adapter):
    def __init__(self, channel: str, log: list[Sent], lock: threading.Lock, delay_s: float = 0.0) -> None:
        self.channel_name = channel
        self.log = log
        self.lock = lock
        self.delay_s = delay_s

    async def send(self, batch: Sequence[Message]) -> list[Outcome]:
        if self.delay_s:
            import asyncio

            await asyncio.sleep(self.delay_s)
        now = time.time()
        with self.lock:
            for m in batch:
                self.log.append(
                    Sent(
                        self.channel_name,
                        m.delivery_id,
                        m.notification.event_id,
                        m.subscriber_id,
                        m.target,
                        m.attempt,
                        now,
                    )
                )
        return [Outcome.delivered() for _ in batch]


class Recorder:
    """Installs recording adapters for some channels; read ``sent`` afterwards."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sent: list[Sent] = []
        self.lock = threading.Lock()
        self.delay_s = delay_s

    def factory(self, channel: str):  # type: ignore[no-untyped-def]
        def make(options: Mapping[str, Any]) -> Adapter:
            return RecordingAdapter(channel, self.sent, self.lock, self.delay_s)

        return make

    def for_event(self, event_id: str) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if s.event_id == event_id]
