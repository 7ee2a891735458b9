"""The Adapter base owns the batch loop: an adapter writes the one-message path only."""

from __future__ import annotations

import asyncio

import pytest

from channels.base import Adapter, Message, Notification, Outcome, OutcomeKind

NOTE = Notification(
    event_id="e1", event_type="incident_created", page_id="acme", occurred_at="2026-12-05T00:00:00Z",
    title="t", status="investigating", impact="minor", message="", components=(), payload={},
)  # fmt: skip


def _messages(n: int) -> list[Message]:
    return [
        Message(delivery_id=f"d{i}", subscriber_id=f"s{i}", target=f"t{i}", notification=NOTE)
        for i in range(n)
    ]


class Counting(Adapter):
    channel = "counting"

    def __init__(self, concurrency: int | None) -> None:
        self.concurrency = concurrency
        self.active = 0
        self.most = 0

    async def deliver(self, message: Message) -> Outcome:
        self.active += 1
        self.most = max(self.most, self.active)
        await asyncio.sleep(0.001)
        self.active -= 1
        if message.target == "t3":
            raise ConnectionError("an SDK error the adapter forgot to translate")
        return Outcome.delivered()


def test_a_batch_is_sent_through_deliver_in_order_within_the_adapters_concurrency():
    adapter = Counting(concurrency=3)
    outcomes = asyncio.run(adapter.send(_messages(10)))
    assert len(outcomes) == 10
    assert adapter.most == 3
    assert [o.kind for i, o in enumerate(outcomes) if i != 3] == [OutcomeKind.delivered] * 9
    # What deliver raises becomes a transient outcome of that message alone.
    assert outcomes[3] == Outcome.transient("counting adapter error: ConnectionError")


def test_send_one_holds_the_same_limit_and_never_raises():
    adapter = Counting(concurrency=2)

    async def many() -> list[Outcome]:
        return list(await asyncio.gather(*(adapter.send_one(m) for m in _messages(6))))

    outcomes = asyncio.run(many())
    assert adapter.most == 2
    assert outcomes[3].kind is OutcomeKind.transient and outcomes[0].kind is OutcomeKind.delivered


def test_an_adapter_that_implements_neither_deliver_nor_send_is_refused_when_defined():
    with pytest.raises(TypeError, match="deliver"):

        class Empty(Adapter):  # noqa: F841 - defining it is the test
            channel = "empty"
