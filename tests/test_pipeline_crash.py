"""Kill a worker mid-shard: the shard runs again and resends nothing already delivered."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from notifyd.ids import delivery_id
from tests.support.env import cli_env
from tests.support.events import incident_event, ref
from tests.support.sink import Reply, SinkProcess
from tests.support.wait import wait_done, wait_until


@pytest.mark.slow
def test_killed_worker_shard_reruns_without_resending_what_was_delivered(runtime, sink, start_worker):
    rt = runtime(shard_size=300, heartbeat_timeout_ms=2000, webhook_concurrency=20, host_concurrency=20)
    subs = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/w/{i}"}).subscriber
        for i in range(300)
    ]
    for i in range(300):
        sink.replies[f"/w/{i}"] = Reply(200, delay_s=0.1)
    env = cli_env(
        rt.settings,
        shard_size="300",
        heartbeat_timeout_ms="2000",
        webhook_concurrency="20",
        host_concurrency="20",
    )
    victim = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "worker", "--threads", "2"], env=env, stderr=subprocess.DEVNULL
    )
    event = incident_event()
    rt.publisher.publish(event)
    try:
        # Kill it once at least one chunk was recorded but the shard is far from done.
        assert wait_until(lambda: rt.tracker.summary(ref(event))["counts"]["delivered"] >= 100, timeout=30)
        time.sleep(0.3)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    records = rt.tracker.records(ref(event), [sub.seq for sub in subs])
    delivered_before = {seq for seq, r in records.items() if r.status == "delivered"}
    assert 100 <= len(delivered_before) < 300

    start_worker(rt, threads=2)  # its maintenance requeues the dead worker's shard
    wait_done(rt, event["event_id"], timeout=60)
    summary = rt.tracker.summary(ref(event))
    assert summary["counts"]["delivered"] == 300

    received = Counter(r.headers["webhook-id"] for r in sink.received)
    for sub in subs:
        did = delivery_id(ref(event), sub.id, "webhook")
        assert received[did] >= 1
        if sub.seq in delivered_before:
            assert received[did] == 1, "a delivery recorded before the kill was sent again"
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= 2 * 100  # at most the chunks in flight when the worker died


def _settled(sink: SinkProcess) -> list[tuple[str, str]]:
    """What arrived at the sink, once nothing more is arriving (a killed worker's last bytes)."""
    before = sink.arrived()
    while True:
        time.sleep(0.3)
        now = sink.arrived()
        if len(now) == len(before):
            return now
        before = now


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_five_sigkills_each_landing_mid_fanout_leave_every_delivery_final_and_resend_only_what_was_in_flight(
    runtime, sink_process: SinkProcess, start_worker
):
    n, kills = 1500, 5
    knobs = {
        "shard_size": 200,
        "heartbeat_timeout_ms": 2000,
        "webhook_concurrency": 16,
        "host_concurrency": 16,
        "rate_limit": "100/hour",
    }
    rt = runtime(**knobs)
    subs = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink_process.url}/k/{i}"}).subscriber
        for i in range(n)
    ]
    sink_process.answer_all(200, delay_s=0.02)  # real HTTP to another process, a little slow
    env = cli_env(rt.settings, **knobs)
    event = incident_event()
    rt.publisher.publish(event)
    seqs = [x.seq for x in subs]
    ids = {x.seq: delivery_id(ref(event), x.id, "webhook") for x in subs}

    def final() -> set[str]:
        return {ids[seq] for seq, r in rt.tracker.records(ref(event), seqs).items() if r.final}

    finals: list[set[str]] = [set()]
    arrived_at_kill: list[Counter[str]] = []
    in_flight: list[set[str]] = []
    for _ in range(kills):
        victim = subprocess.Popen(
            [sys.executable, "-m", "notifyd", "worker", "--threads", "2"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            # Kill only after this worker made progress: more deliveries final than at the last kill.
            assert wait_until(lambda: len(final()) >= len(finals[-1]) + 50, timeout=90)
            # Hold the replies, so the kill lands while deliveries are on the wire.
            sink_process.gate("/k/")
            assert wait_until(lambda: sink_process.waiting() >= 1, timeout=30)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        finally:
            if victim.poll() is None:
                victim.kill()
                victim.wait(10)
        arrived = Counter(i for _, i in _settled(sink_process))
        done = final()
        sink_process.open("/k/")  # the dead worker's held requests get answers nobody records
        # The kill landed mid fan-out: some deliveries final, more than at the last kill, not all,
        # and some sent but not recorded.
        assert finals[-1] < done and 0 < len(done) < n, (len(finals[-1]), len(done))
        assert set(arrived) - done, "no delivery was in flight at the kill"
        finals.append(done)
        arrived_at_kill.append(arrived)
        in_flight.append(set(arrived) - done)

    start_worker(rt, threads=4)
    summary = wait_done(rt, event["event_id"], timeout=180)
    assert summary["counts"]["planned"] == n and summary["counts"]["delivered"] == n, summary["counts"]

    received = Counter(i for _, i in sink_process.arrived())
    assert set(received) == set(ids.values())
    for done, arrived in zip(finals[1:], arrived_at_kill, strict=True):
        # What was final at a kill was never sent again afterwards.
        assert all(received[i] == arrived[i] for i in done)
    # A delivery is sent again only if it was in flight (sent, not yet recorded) at a kill, and at
    # most once per such kill: a whole shard sent again would break this at once.
    for delivery, count in received.items():
        assert count - 1 <= sum(delivery in chunk for chunk in in_flight), (delivery, count)
    duplicates = sum(c - 1 for c in received.values())
    assert duplicates <= sum(len(chunk) for chunk in in_flight)


@pytest.mark.slow
def test_a_worker_killed_after_handing_on_its_stragglers_has_them_sent_by_the_continuation(
    runtime, sink, start_worker
):
    from notifyd.state.queues import lane_stats

    rt = runtime(heartbeat_timeout_ms=2000, webhook_timeout_s=4.0, handoff_after_ms=100, shard_size=100)
    fast = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/f/{i}"}).subscriber
        for i in range(20)
    ]
    held = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/g/{i}"}).subscriber
        for i in range(10)
    ]
    gate = sink.gate("/g/")
    env = cli_env(
        rt.settings,
        shard_size="100",
        heartbeat_timeout_ms="2000",
        webhook_timeout_s="4",
        handoff_after_ms="100",
    )
    victim = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "worker", "--threads", "2"], env=env, stderr=subprocess.DEVNULL
    )
    event = incident_event(priority="normal")
    rt.publisher.publish(event)
    try:
        # The shard streamed: the fast deliveries are recorded while the held ones are in flight,
        # and the shard handed those on (a delayed continuation) and was acked.
        assert sink.wait_for(lambda: gate.waiting == 10, timeout=30)
        assert wait_until(lambda: rt.tracker.summary(ref(event))["counts"]["delivered"] == 20, timeout=30)

        def handed_on() -> bool:
            normal = next(x for x in lane_stats(rt.client, rt.keys) if x.lane == "normal")
            return normal.delayed == 1 and normal.in_flight == 0

        assert wait_until(handed_on, timeout=10)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    records = rt.tracker.records(ref(event), [sub.seq for sub in held])
    assert [r.status for r in records.values()] == ["pending"] * 10
    gate.open()  # the dead worker's requests get their answers, which nobody records

    start_worker(rt, threads=2)  # the continuation comes due and sends the ten again
    assert wait_until(lambda: rt.tracker.summary(ref(event))["state"] == "done", timeout=60)
    assert rt.tracker.summary(ref(event))["counts"]["delivered"] == 30
    received = Counter(r.headers["webhook-id"] for r in sink.received)
    for sub in fast:
        assert received[delivery_id(ref(event), sub.id, "webhook")] == 1
    for sub in held:
        assert received[delivery_id(ref(event), sub.id, "webhook")] >= 1
