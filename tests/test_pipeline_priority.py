"""A critical incident never waits behind a low-priority fanout (real HTTP, another process)."""

from __future__ import annotations

import threading

import dramatiq

from notifyd.runtime.broker import LANE_PRIORITY
from tests.support.events import component_event, incident_event
from tests.support.sink import SinkProcess
from tests.support.wait import wait_done, wait_until


def test_critical_event_shards_run_before_the_remaining_low_ones(
    runtime, sink_process: SinkProcess, start_worker
):
    sink_process.answer_all(200, delay_s=0.05)  # every delivery takes a little while, like real sends
    # A bulk window of 8 sends: the low fan-out waits for send slots, as a large one does for a
    # full window (steps hand their sends on once started, so with slots to spare all 200 would
    # be in flight before the critical event is published, and order would test nothing).
    rt = runtime(shard_size=5, dispatch_window=16, dispatch_reserve=8)
    for i in range(200):
        rt.subscribers.add("bulk", {"channel": "webhook", "target": f"{sink_process.url}/low/{i}"})
    for i in range(5):
        rt.subscribers.add("vip", {"channel": "webhook", "target": f"{sink_process.url}/crit/{i}"})
    start_worker(rt, threads=2)

    low = component_event(page="bulk", status="under_maintenance", priority="low")
    rt.publisher.publish(low)
    assert wait_until(lambda: len(sink_process.arrived()) >= 10, timeout=30)
    critical = incident_event(page="vip", priority="critical")
    rt.publisher.publish(critical)

    assert wait_done(rt, low["event_id"], timeout=60)["counts"]["delivered"] == 200
    assert wait_done(rt, critical["event_id"])["counts"]["delivered"] == 5
    order = [path for path, _ in sink_process.arrived()]
    last_critical = max(n for n, path in enumerate(order) if path.startswith("/crit/"))
    low_after = sum(1 for path in order[last_critical:] if path.startswith("/low/"))
    # The low fanout still had most of its deliveries waiting for a slot when the critical event
    # arrived; only what was in flight then, or started while it was ingested, may go before it.
    assert low_after >= 150, f"only {low_after} low deliveries went after the critical event"


def test_priority_comes_from_impact_when_the_event_does_not_name_one():
    from notifyd.publish import parse_event

    assert parse_event(incident_event()).priority.value == "high"  # impact major
    minor = incident_event()
    minor["incident"]["impact"] = "minor"
    assert parse_event(minor).priority.value == "normal"
    critical = incident_event()
    critical["incident"]["impact"] = "critical"
    assert parse_event(critical).priority.value == "critical"


def test_a_critical_event_is_delivered_while_low_work_holds_every_ordinary_worker_thread(
    runtime, sink, start_worker
):
    rt = runtime(shard_size=5, rate_limit="1000/hour")
    for i in range(100):
        rt.subscribers.add("bulk", {"channel": "webhook", "target": f"{sink.url}/low/{i}"})
    for i in range(5):
        rt.subscribers.add("vip", {"channel": "webhook", "target": f"{sink.url}/crit/{i}"})
    low_gate = sink.gate("/low/")
    start_worker(rt, threads=2)
    low = component_event(page="bulk", status="under_maintenance", priority="low")
    rt.publisher.publish(low)
    assert sink.wait_for(lambda: low_gate.waiting >= 5, timeout=30)  # low sends are stuck
    critical = incident_event(page="vip", priority="critical")
    rt.publisher.publish(critical)
    # Every critical delivery arrives while the low ones are still held at their gate.
    assert sink.wait_for(lambda: len(sink.on_prefix("/crit/")) == 5, timeout=30), low_gate.waiting
    assert not [r for r in sink.received if r.path.startswith("/low/")]
    low_gate.open()
    assert wait_done(rt, low["event_id"], timeout=60)["counts"]["delivered"] == 100


def test_critical_steps_run_on_threads_of_their_own_while_low_steps_hold_every_ordinary_thread(
    runtime, sink, start_worker
):
    """The urgent lanes' thread pool is load-bearing: low *steps* (not sends, which the dispatcher
    takes off the threads) hold every ordinary worker thread, and a critical event still goes out."""
    rt = runtime()
    for i in range(3):
        rt.subscribers.add("vip", {"channel": "webhook", "target": f"{sink.url}/crit/{i}"})
    holding: list[str] = []
    release = threading.Event()

    def hold_a_low_thread(n: int) -> None:
        holding.append(threading.current_thread().name)
        release.wait(90)

    low_step = dramatiq.Actor(
        hold_a_low_thread,
        broker=rt.broker,
        actor_name="test_hold_a_low_thread",
        queue_name=rt.keys.queue_name("low"),
        priority=LANE_PRIORITY["low"],
        options={},
    )
    start_worker(rt, threads=2)
    try:
        for n in range(4):  # more than there are ordinary threads
            low_step.send(n)
        assert wait_until(lambda: len(holding) == 2, timeout=30), holding
        critical = incident_event(page="vip", priority="critical")
        rt.publisher.publish(critical)
        assert wait_done(rt, critical["event_id"], timeout=30)["counts"]["delivered"] == 3
        assert len(sink.on_prefix("/crit/")) == 3
        assert len(holding) == 2 and not release.is_set()  # the low steps held on throughout
    finally:
        release.set()
    assert wait_until(lambda: len(holding) == 4, timeout=30)
