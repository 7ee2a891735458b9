"""The recorder gathers an event attempt's transient outcomes from several steps (tickets) and
batches into one retry message, written before the records that say "retrying"; delivered
outcomes are not held for it. Real Redis, the real OutcomeRecorder and queue; no worker runs,
so the retry messages stay in the lane's delay queue where the test reads them."""

from __future__ import annotations

import random
from typing import Any

import dramatiq
import pytest

from channels.base import Outcome
from notifyd.pipeline.dispatcher import Ticket
from notifyd.pipeline.events import EventCache, LoadedEvent
from notifyd.pipeline.outcomes import OutcomeRecorder
from notifyd.pipeline.recorder import BatchedRecorder
from notifyd.pipeline.retry import next_delay
from notifyd.pipeline.steps import RETRY, StepQueue, actor_name
from notifyd.state.subscribers import StoredSubscriber
from notifyd.state.tracking import Record, Tracker, Update
from tests.support.events import incident_event, ref
from tests.support.wait import wait_until

LANE = "normal"


def _retry_messages(rt) -> list[dramatiq.Message[Any]]:
    stored = rt.client.hgetall(rt.keys.queue_messages(rt.keys.delayed_queue_name(LANE)))
    messages = [dramatiq.Message.decode(data) for data in stored.values()]
    return [m for m in messages if m.actor_name == actor_name(RETRY, LANE)]


def _event(rt, n: int) -> tuple[LoadedEvent, list[StoredSubscriber]]:
    for i in range(n):
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"http://127.0.0.1:9/{i}"})
    event = incident_event(priority=LANE)
    assert rt.publisher.publish(event).status == "accepted"
    loaded = EventCache(rt.tracker, None, rt.settings.public_url).load(ref(event))
    assert loaded is not None
    subs = rt.subscribers.range("acme", 0, 10 * n)
    rt.tracker.plan(loaded.ref, [Update(s.seq, Record("pending", 0, 0)) for s in subs])
    return loaded, subs


def _recorder(rt, tracker: Tracker) -> OutcomeRecorder:
    return OutcomeRecorder(
        settings=rt.settings,
        client=rt.client,
        keys=rt.keys,
        tracker=tracker,
        subscribers=rt.subscribers,
        queue=StepQueue(rt.broker, rt.keys),
        send_notices=lambda notices: [],
        rng=random.Random(7),
    )


class _CheckingTracker(Tracker):
    """The real tracker; each write of "retrying" records first notes which retry messages are
    already in Redis (or raises after that, as a process dying there would stop)."""

    def __init__(self, rt, *, fail: bool = False) -> None:
        super().__init__(rt.client, rt.keys, ttl_s=rt.tracker.ttl_s)
        self.rt = rt
        self.fail = fail
        self.seen: list[tuple[set[int], list[set[int]]]] = []

    def record(self, ref: str, updates: Any) -> Any:
        updates = list(updates)
        retrying = {u.seq for u in updates if u.record.status == "retrying"}
        if retrying:
            self.seen.append((retrying, [set(m.args[1]) for m in _retry_messages(self.rt)]))
            if self.fail:
                raise RuntimeError("the process stopped between the retry message and the records")
        return super().record(ref, updates)


@pytest.fixture
def rt(runtime):
    return runtime(retry_schedule_webhook="1,2,4", retry_jitter=0.0)


def test_failures_from_several_steps_and_batches_go_out_in_one_retry_message_written_before_their_records(
    rt,
):
    loaded, subs = _event(rt, 9)
    tracker = _CheckingTracker(rt)
    recorder = BatchedRecorder(_recorder(rt, tracker).record, batch=256, flush_s=0.001, gather_s=3600)
    tickets = [Ticket(loaded, 1, subs[i : i + 3], []) for i in (0, 3, 6)]
    try:
        for ticket in tickets:
            # One delivered, two failed per step; each step's outcomes come in a batch of their own.
            ticket_subs = list(ticket.subs)
            recorder.put(ticket, 0, Outcome.delivered())
            recorder.put(ticket, 1, Outcome.transient("HTTP 500"))
            recorder.put(ticket, 2, Outcome.transient("timeout"))
            # The delivered outcome is written at once; the failures wait for the others'.
            assert wait_until(lambda t=ticket: t.recorded == 1)
            assert (
                rt.tracker.records(loaded.ref, [ticket_subs[0].seq])[ticket_subs[0].seq].status == "delivered"
            )
        assert _retry_messages(rt) == []
        failed = {s.seq for t in tickets for s in list(t.subs)[1:]}
        assert {r.status for r in rt.tracker.records(loaded.ref, sorted(failed)).values()} == {"pending"}
    finally:
        recorder.close()
    (message,) = _retry_messages(rt)
    assert (
        message.args[0] == loaded.ref and sorted(message.args[1]) == sorted(failed) and message.args[2] == 2
    )
    assert message.options["eta"] > 0  # delayed by the schedule's first step
    # When the records said "retrying", the one message naming all of them was already there.
    assert tracker.seen == [(failed, [failed])]
    records = rt.tracker.records(loaded.ref, sorted(failed))
    assert {(r.status, r.attempts) for r in records.values()} == {("retrying", 1)}
    assert all(t.finished and t.error is None for t in tickets)


def test_a_failure_between_the_retry_message_and_the_records_leaves_no_retrying_record_without_a_message(rt):
    loaded, subs = _event(rt, 6)
    tracker = _CheckingTracker(rt, fail=True)
    recorder = BatchedRecorder(_recorder(rt, tracker).record, batch=256, flush_s=0.001, gather_s=3600)
    tickets = [Ticket(loaded, 1, subs[i : i + 3], []) for i in (0, 3)]
    for ticket in tickets:
        for index in range(3):
            recorder.put(ticket, index, Outcome.transient("HTTP 503"))
    recorder.close()
    seqs = {s.seq for s in subs}
    (message,) = _retry_messages(rt)
    assert set(message.args[1]) == seqs
    # The records were not written: they still say what they said before the sends, and the
    # steps that own the tickets fail (and run again, sending what is not recorded).
    assert {r.status for r in rt.tracker.records(loaded.ref, sorted(seqs)).values()} == {"pending"}
    assert all(isinstance(t.error, RuntimeError) for t in tickets)
    assert all(t.finished for t in tickets)


def test_a_few_failures_whose_jittered_delays_span_two_seconds_share_one_retry_message(runtime):
    rt = runtime(retry_schedule_webhook="1,2,4", retry_jitter=0.2)
    loaded, subs = _event(rt, 10)
    # The recorder's own rng, replayed: its ten delays fall on both sides of the whole second.
    replay = random.Random(7)
    delays = [next_delay((1.0,), 1, jitter=0.2, rng=replay) for _ in subs]
    assert min(delays) <= 1.0 < max(delays)
    recorder = BatchedRecorder(_recorder(rt, rt.tracker).record, batch=256, flush_s=0.001, gather_s=3600)
    ticket = Ticket(loaded, 1, subs, [])
    for index in range(len(subs)):
        recorder.put(ticket, index, Outcome.transient("HTTP 500"))
    recorder.close()
    (message,) = _retry_messages(rt)
    assert sorted(message.args[1]) == sorted(s.seq for s in subs)
    # Due when the last may go: none of them sooner than its own delay.
    assert message.options["eta"] - message.message_timestamp >= max(delays) * 1000 - 1


def test_without_gathering_each_ticket_writes_its_own_retry_message(rt):
    loaded, subs = _event(rt, 4)
    recorder = BatchedRecorder(_recorder(rt, rt.tracker).record, batch=256, flush_s=0.001, gather_s=0)
    tickets = [Ticket(loaded, 1, subs[i : i + 2], []) for i in (0, 2)]
    for ticket in tickets:
        recorder.put(ticket, 0, Outcome.transient("HTTP 500"))
        recorder.put(ticket, 1, Outcome.transient("HTTP 500"))
        assert wait_until(lambda t=ticket: t.finished)
    recorder.close()
    assert sorted(sorted(m.args[1]) for m in _retry_messages(rt)) == [
        sorted(s.seq for s in t.subs) for t in tickets
    ]


def test_one_batch_of_several_tickets_outcomes_is_one_write_per_event_attempt(rt):
    loaded, subs = _event(rt, 6)
    writes: list[int] = []
    outcomes = _recorder(rt, rt.tracker)

    def record(loaded_, results, attempt):
        writes.append(len(results))
        outcomes.record(loaded_, results, attempt)

    # A flush window long enough that the six outcomes of three tickets make one batch.
    recorder = BatchedRecorder(record, batch=6, flush_s=30, gather_s=0)
    tickets = [Ticket(loaded, 1, subs[i : i + 2], []) for i in (0, 2, 4)]
    for ticket in tickets:
        recorder.put(ticket, 0, Outcome.delivered())
        recorder.put(ticket, 1, Outcome.delivered())
    assert wait_until(lambda: all(t.finished for t in tickets))
    recorder.close()
    assert writes == [6]
    assert rt.tracker.summary(loaded.ref)["counts"]["delivered"] == 6


def test_the_bulk_recorder_still_writes_while_urgent_work_stays_live(rt):
    loaded, subs = _event(rt, 2)
    recorder = BatchedRecorder(_recorder(rt, rt.tracker).record, batch=256, flush_s=0.001, gather_s=0)
    recorder.yield_to = lambda: True  # urgent work that never ends: the recorder waits, a while
    ticket = Ticket(loaded, 1, subs, [])
    recorder.put(ticket, 0, Outcome.delivered())
    recorder.put(ticket, 1, Outcome.delivered())
    assert wait_until(lambda: ticket.finished)
    recorder.close()
    assert rt.tracker.summary(loaded.ref)["counts"]["delivered"] == 2
