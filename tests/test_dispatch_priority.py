"""Priority and isolation at the send slot: real HTTP through the webhook adapter, a gated sink.

A gate holds the replies of one path prefix for as long as a test needs, so
these tests assert what got a slot while the gate was shut, and in what order
requests reached the sink; never how long anything took.
"""

from __future__ import annotations

from notifyd.ids import delivery_id
from tests.support.events import incident_event, ref
from tests.support.sink import Sink
from tests.support.wait import summary_of, wait_until


def _add(rt, page, url, n):
    return [
        rt.subscribers.add(page, {"channel": "webhook", "target": f"{url}/{i}"}).subscriber for i in range(n)
    ]


def _done(rt, event_id):
    return (summary_of(rt, event_id) or {}).get("state") == "done"


def test_a_critical_event_does_not_queue_behind_low_deliveries_waiting_for_slots(runtime, sink, start_worker):
    # No reserve: the low lanes may take every slot of the window, and they do.
    rt = runtime(dispatch_window=6, dispatch_reserve=0, shard_size=100, rate_limit="100/hour")
    _add(rt, "bulk", f"{sink.url}/low", 50)
    _add(rt, "ops", f"{sink.url}/crit", 5)
    gate = sink.gate("/low")
    worker = start_worker(rt, threads=2)
    low = incident_event(page="bulk", priority="low")
    rt.publisher.publish(low)
    assert sink.wait_for(lambda: gate.waiting == 6)  # every slot is held by a low delivery
    bulk = worker.holder.get().dispatchers.bulk
    assert wait_until(lambda: bulk.waiting == 44)
    critical = incident_event(page="ops", priority="critical")
    rt.publisher.publish(critical)
    # The critical lane has a dispatcher of its own: its sends went out while every low slot was
    # held and forty-four low deliveries were still queued for one.
    assert wait_until(lambda: _done(rt, critical["event_id"]))
    assert rt.tracker.summary(ref(critical))["counts"]["delivered"] == 5
    assert gate.waiting == 6 and bulk.waiting == 44
    assert len([p for p in sink.arrivals if p.startswith("/low/")]) == 6

    gate.open()
    assert wait_until(lambda: _done(rt, low["event_id"]))
    assert rt.tracker.summary(ref(low))["counts"]["delivered"] == 50


def test_a_critical_event_is_delivered_while_low_deliveries_hold_every_ordinary_slot(
    runtime, sink, start_worker
):
    rt = runtime(dispatch_window=8, dispatch_reserve=3, shard_size=100, rate_limit="100/hour")
    _add(rt, "bulk", f"{sink.url}/low", 40)
    _add(rt, "ops", f"{sink.url}/crit", 3)
    gate = sink.gate("/low")
    start_worker(rt, threads=2)
    low = incident_event(page="bulk", priority="low")
    rt.publisher.publish(low)
    assert sink.wait_for(lambda: gate.waiting == 5)  # the window less the reserve
    critical = incident_event(page="ops", priority="critical")
    rt.publisher.publish(critical)
    assert wait_until(lambda: _done(rt, critical["event_id"]))
    assert rt.tracker.summary(ref(critical))["counts"]["delivered"] == 3
    assert gate.waiting == 5 and rt.tracker.summary(ref(low))["counts"]["delivered"] == 0
    gate.open()
    assert wait_until(lambda: _done(rt, low["event_id"]))
    assert rt.tracker.summary(ref(low))["counts"]["delivered"] == 40


def test_one_slow_host_cannot_hold_the_slots_other_hosts_need(runtime, sink, start_worker):
    other = Sink().start()
    try:
        rt = runtime(dispatch_window=16, dispatch_reserve=0, host_concurrency=4, shard_size=100)
        slow = _add(rt, "acme", f"{sink.url}/slow", 30)
        fast = _add(rt, "acme", f"{other.url}/fast", 20)
        gate = sink.gate("/slow")
        start_worker(rt, threads=2)
        event = incident_event(page="acme", priority="normal")
        rt.publisher.publish(event)

        def fast_recorded() -> bool:
            records = rt.tracker.records(ref(event), [s.seq for s in fast])
            return len(records) == 20 and all(r.status == "delivered" for r in records.values())

        # While the slow host holds its replies, the other host's deliveries are all recorded.
        assert wait_until(fast_recorded)
        assert gate.waiting == 4  # the slow host has its cap of slots, no more
        gate.open()
        assert wait_until(lambda: _done(rt, event["event_id"]))
        assert rt.tracker.summary(ref(event))["counts"]["delivered"] == 50
        ids = {r.headers["webhook-id"] for r in sink.received}
        assert ids == {delivery_id(ref(event), s.id, "webhook") for s in slow}
    finally:
        other.stop()


def test_a_small_page_of_the_same_lane_is_not_stuck_behind_a_queued_fan_out(runtime, sink, start_worker):
    rt = runtime(dispatch_window=6, dispatch_reserve=0, shard_size=100, rate_limit="100/hour")
    _add(rt, "big", f"{sink.url}/big", 60)
    _add(rt, "small", f"{sink.url}/small", 5)
    gate = sink.gate("/big")
    worker = start_worker(rt, threads=2)
    fan_out = incident_event("big", priority="normal")
    rt.publisher.publish(fan_out)
    assert sink.wait_for(lambda: gate.waiting == 6)
    dispatcher = worker.holder.get().dispatcher
    assert wait_until(lambda: dispatcher.waiting == 54)
    page = incident_event("small", priority="normal")
    rt.publisher.publish(page)
    assert wait_until(lambda: dispatcher.waiting == 59)

    gate.open()
    assert wait_until(lambda: _done(rt, page["event_id"]) and _done(rt, fan_out["event_id"]))
    order = list(sink.arrivals)
    last_small = max(i for i, p in enumerate(order) if p.startswith("/small/"))
    big_before = sum(1 for p in order[:last_small] if p.startswith("/big/"))
    # Freed slots alternate between the two events: the six held, then about one of the fan-out's
    # per delivery of the page; first come, first served would put all sixty first.
    assert big_before <= 6 + 5 + 2, order


def test_normal_deliveries_held_back_by_urgent_work_go_out_once_it_is_over(runtime, sink, start_worker):
    rt = runtime(shard_size=100, rate_limit="100/hour")
    _add(rt, "ops", f"{sink.url}/crit", 2)
    _add(rt, "acme", f"{sink.url}/normal", 3)
    gate = sink.gate("/crit")
    worker = start_worker(rt, threads=2)
    critical = incident_event(page="ops", priority="critical")
    rt.publisher.publish(critical)
    assert sink.wait_for(lambda: gate.waiting == 2)  # urgent sends in flight: the bulk lanes wait
    normal = incident_event(page="acme", priority="normal")
    rt.publisher.publish(normal)
    bulk = worker.holder.get().dispatchers.bulk
    assert wait_until(lambda: bulk.waiting == 3)
    assert not [p for p in sink.arrivals if p.startswith("/normal/")]
    # Nothing of the bulk lanes is in flight, so no completion starts them: the urgent work's end does.
    gate.open()
    assert wait_until(lambda: _done(rt, critical["event_id"]) and _done(rt, normal["event_id"]))
    assert rt.tracker.summary(ref(normal))["counts"]["delivered"] == 3


def test_a_step_hands_a_hung_delivery_on_and_its_thread_serves_the_next_event(
    runtime, sink, start_worker, monkeypatch
):
    # A time slice, and wait slices, longer than the test: a waiting step thread looks at its
    # ticket once per wait slice unless the ticket wakes it, so only the ticket waking the thread
    # when just the stragglers are left lets it hand the hung send on and serve the next event.
    from notifyd.pipeline import send

    monkeypatch.setattr(send, "WAIT_SLICE_S", 600.0)
    rt = runtime(handoff_after_ms=600_000, webhook_timeout_s=120, shard_size=100, rate_limit="100/hour")
    _add(rt, "acme", f"{sink.url}/ok", 19)
    _add(rt, "acme", f"{sink.url}/hung", 1)
    _add(rt, "other", f"{sink.url}/other", 5)
    gate = sink.gate("/hung")
    start_worker(rt, threads=1)
    first = incident_event(page="acme", priority="normal")
    rt.publisher.publish(first)
    assert sink.wait_for(lambda: gate.waiting == 1)
    second = incident_event(page="other", priority="normal")
    rt.publisher.publish(second)
    # The one worker thread went on to the next event while the hung send was still held.
    assert wait_until(lambda: _done(rt, second["event_id"]))
    assert gate.waiting == 1
    assert rt.tracker.summary(ref(first))["counts"]["delivered"] == 19
    gate.open()
    # The send in flight is still answered and recorded, once.
    assert wait_until(lambda: _done(rt, first["event_id"]))
    assert rt.tracker.summary(ref(first))["counts"]["delivered"] == 20
    assert [p for p in sink.arrivals if p.startswith("/hung/")] == ["/hung/0"]
