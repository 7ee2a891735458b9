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


def test_send_one_without_limits_is_not_counted_by_them_and_never_raises():
    adapter = Counting(concurrency=2)

    async def many() -> list[Outcome]:
        return list(await asyncio.gather(*(adapter.send_one(m, limits=False) for m in _messages(6))))

    outcomes = asyncio.run(many())
    assert adapter.most == 6  # the caller (the dispatcher) bounds these sends itself
    assert outcomes[3].kind is OutcomeKind.transient and outcomes[0].kind is OutcomeKind.delivered


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


class PerSlot(Adapter):
    """Sends wait on a per-target gate; ``slot_key`` is the target's first letter."""

    channel = "per-slot"

    def __init__(self, slot_concurrency: int, concurrency: int | None = None) -> None:
        self.slot_concurrency = slot_concurrency
        self.concurrency = concurrency
        self.active: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.order: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def slot_key(self, message: Message) -> str:
        return message.target[0]

    async def deliver(self, message: Message) -> Outcome:
        slot = self.slot_key(message)
        self.active[slot] = self.active.get(slot, 0) + 1
        self.most[slot] = max(self.most.get(slot, 0), self.active[slot])
        self.order.append(message.target)
        await self.gates.setdefault(slot, asyncio.Event()).wait()
        self.active[slot] -= 1
        return Outcome.delivered()


def _to(*targets: str) -> list[Message]:
    return [Message(f"d-{t}", f"s-{t}", t, NOTE) for t in targets]


def test_a_slots_cap_holds_across_batches_and_a_full_slot_holds_no_place_the_others_need() -> None:
    async def go() -> PerSlot:
        adapter = PerSlot(slot_concurrency=2, concurrency=3)
        adapter.gates["f"] = asyncio.Event()
        adapter.gates["f"].set()  # the "f" host answers at once; "s" holds every request
        first = asyncio.ensure_future(adapter.send(_to("s1", "s2", "s3")))
        second = asyncio.ensure_future(adapter.send(_to("s4", "s5", "f1", "f2", "f3")))
        while len([t for t in adapter.order if t.startswith("f")]) < 3:
            await asyncio.sleep(0.001)
        # Two batches, one slot: only two "s" sends in flight in all, not two per batch, and
        # the "f" sends went through the adapter's third place meanwhile.
        assert adapter.active["s"] == 2 and adapter.order[:2] == ["s1", "s2"]
        adapter.gates["s"].set()
        outcomes = await first + await second
        assert all(o.kind is OutcomeKind.delivered for o in outcomes)
        return adapter

    adapter = asyncio.run(go())
    assert adapter.most["s"] == 2
    # Waiting sends of a slot go in the order they came.
    assert [t for t in adapter.order if t.startswith("s")] == ["s1", "s2", "s3", "s4", "s5"]


def test_a_send_cancelled_while_waiting_for_its_slot_passes_its_turn_on() -> None:
    async def go() -> list[str]:
        adapter = PerSlot(slot_concurrency=1)
        holder = asyncio.ensure_future(adapter.send_one(_to("a1")[0]))
        waiting = asyncio.ensure_future(adapter.send_one(_to("a2")[0]))
        last = asyncio.ensure_future(adapter.send_one(_to("a3")[0]))
        while not adapter.order:
            await asyncio.sleep(0.001)
        waiting.cancel()
        adapter.gates["a"].set()
        await asyncio.gather(holder, last)
        return adapter.order

    assert asyncio.run(go()) == ["a1", "a3"]
