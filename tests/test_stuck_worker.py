"""A worker whose event loop is stuck fences itself (exit 70), and its messages go to another worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from notifyd.pipeline.asyncrunner import EXIT_STUCK, AsyncRunner, LoopStalled
from tests.support.events import incident_event, ref
from tests.support.wait import wait_until


def _runner(**kwargs) -> tuple[AsyncRunner, list[str]]:
    stalls: list[str] = []
    return AsyncRunner(on_stall=stalls.append, **kwargs), stalls


def test_a_call_on_a_loop_that_no_longer_answers_stops_waiting_and_fences():
    runner, stalls = _runner(stall_timeout_s=0.2)
    try:
        release = threading.Event()
        runner.loop.call_soon_threadsafe(release.wait, 30)  # a blocking call inside the loop
        with pytest.raises(LoopStalled):
            runner.run(asyncio.sleep(0))
        assert stalls and "did not answer" in stalls[0]
        release.set()
        # Let the loop start the abandoned sleep(0): stopped before that, it would be collected
        # unawaited and warn in whichever test the collector next runs in.
        assert runner.responsive(5)
    finally:
        runner.stop()


def test_a_call_that_outlasts_the_step_deadline_fences_even_while_the_loop_answers():
    runner, stalls = _runner(stall_timeout_s=5, step_deadline_s=0.5)
    try:
        with pytest.raises(LoopStalled):
            runner.run(asyncio.sleep(3600))
        assert stalls and "more than 0.5 s" in stalls[0]
    finally:
        runner.stop()


def test_a_call_with_its_own_timeout_raises_timeout_and_does_not_fence():
    runner, stalls = _runner(stall_timeout_s=5)
    try:
        with pytest.raises(TimeoutError):
            runner.run(asyncio.sleep(3600), timeout=0.3)
        assert stalls == []
        assert runner.run(asyncio.sleep(0, result=7)) == 7
    finally:
        runner.stop()


def test_a_dead_loop_thread_fences_the_next_wait():
    runner, stalls = _runner(stall_timeout_s=0.2)
    try:
        runner.loop.call_soon_threadsafe(runner.loop.stop)
        time.sleep(0.2)
        with pytest.raises(LoopStalled):
            runner.wait(lambda t: time.sleep(t) or False)
        assert stalls
    finally:
        runner.stop()


#: A worker process whose email adapter blocks the event loop (a sync sleep in a coroutine).
STUCK_WORKER = textwrap.dedent(
    """
    import sys, time
    from channels import registry
    from channels.base import Adapter, Outcome

    class Blocking(Adapter):
        channel_name = "email"

        async def send(self, batch):
            time.sleep(3600)
            return [Outcome.delivered() for _ in batch]

    registry._FACTORIES["email"] = lambda options: Blocking()
    from notifyd.cli import main
    sys.exit(main(["worker", "--threads", "2"]))
    """
)


@pytest.mark.slow
def test_worker_with_a_stuck_event_loop_exits_70_and_another_worker_delivers_its_messages(
    runtime, recorder, start_worker
):
    rt = runtime(heartbeat_timeout_ms=2000, loop_stall_timeout_ms=1000)
    for i in range(5):
        rt.subscribers.add("acme", {"channel": "email", "target": f"ops{i}@example.com"})
    s = rt.settings
    env = {
        **os.environ,
        "NOTIFYD_REDIS_URL": rt.url,
        "NOTIFYD_NAMESPACE": s.namespace,
        "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
        "NOTIFYD_HEARTBEAT_TIMEOUT_MS": "2000",
        "NOTIFYD_LOOP_STALL_TIMEOUT_MS": "1000",
        "NOTIFYD_POLL_TIMEOUT_MS": "20",
        # The step hands its started sends on to a continuation due after the longest a send may
        # take (the webhook timeout) plus a margin; that continuation is what finds the loop stuck.
        # 1 s instead of 10 s brings it, and the fence, ~9 s sooner.
        "NOTIFYD_WEBHOOK_TIMEOUT_S": "1",
        "NOTIFYD_DATA_DIR": str(s.data_dir),
    }
    stuck = subprocess.Popen([sys.executable, "-c", STUCK_WORKER], env=env, stderr=subprocess.PIPE)
    try:
        event = incident_event()
        rt.publisher.publish(event)
        _, raw = stuck.communicate(timeout=60)
        returncode, err = stuck.returncode, raw.decode(errors="replace")
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.communicate()
    assert returncode == EXIT_STUCK, err[-2000:]
    assert "fencing this worker" in err
    assert (rt.tracker.summary(ref(event)) or {}).get("state") != "done"

    start_worker(rt, threads=2)  # its maintenance requeues what the fenced worker held
    assert wait_until(lambda: (rt.tracker.summary(ref(event)) or {}).get("state") == "done", timeout=60)
    assert rt.tracker.summary(ref(event))["counts"]["delivered"] == 5
    assert len({s.delivery_id for s in recorder.for_event(event["event_id"])}) == 5
