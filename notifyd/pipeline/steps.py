"""The pipeline's queue messages: one actor per (step, lane), and the one place that enqueues them.

Ingest enqueues shards, outcomes enqueue retries, and the API's redrive
enqueues retries too; all of them go through :class:`StepQueue`, so a step's
actor name and queue are spelled in one module.
"""

from __future__ import annotations

from typing import Any

from dramatiq import Broker
from dramatiq import Message as QueueMessage

from notifyd.state.keys import Keys

INGEST = "ingest"
DELIVER_SHARD = "deliver_shard"
RETRY = "retry"
#: A shard's deliveries that were still in flight when it handed them on (see send.py).
RESUME = "resume"
#: Send a pending sign-up its confirmation (notifyd/selfservice/confirmations.py).
CONFIRM = "confirm"
STEPS = (INGEST, DELIVER_SHARD, RETRY, RESUME, CONFIRM)
#: The lane confirmations travel on: a person is waiting for the mail, but an outage comes first.
CONFIRM_LANE = "high"


def actor_name(step: str, lane: str) -> str:
    return f"{step}_{lane}"


def step_message(
    keys: Keys, step: str, lane: str, args: tuple[Any, ...], **options: Any
) -> QueueMessage[Any]:
    return QueueMessage(
        queue_name=keys.queue_name(lane),
        actor_name=actor_name(step, lane),
        args=args,
        kwargs={},
        options=options,
    )


class StepQueue:
    """Enqueues pipeline steps on their lane's queue, optionally delayed (durably, by the broker)."""

    def __init__(self, broker: Broker, keys: Keys) -> None:
        self.broker = broker
        self.keys = keys

    def enqueue(self, step: str, lane: str, args: tuple[Any, ...], *, delay_ms: int | None = None) -> None:
        self.broker.enqueue(step_message(self.keys, step, lane, args), delay=delay_ms)

    def confirmation(self, pending_id: str, attempt: int = 1, *, delay_ms: int | None = None) -> None:
        """Enqueue the sending of a pending sign-up's confirmation."""
        self.enqueue(CONFIRM, CONFIRM_LANE, (pending_id, attempt), delay_ms=delay_ms)
