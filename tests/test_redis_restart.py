"""Restart Redis (AOF) mid-run: nothing accepted is lost, nothing refused is delivered.

Real HTTP: the webhook adapter sends to a sink in another process, from a worker with two
threads. One event is published just before the kill and more during the outage; the delivery
ids the sink saw are compared with the plan of exactly the events that were accepted.
"""

from __future__ import annotations

import os
import signal

import pytest

from notifyd.ids import delivery_id
from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.runtime.wiring import Runtime
from notifyd.runtime.worker import InProcessWorker
from tests.support.events import incident_event, ref
from tests.support.sink import SinkProcess
from tests.support.wait import wait_done, wait_until

SUBSCRIBERS = 200


@pytest.mark.slow
def test_events_accepted_before_redis_is_killed_are_all_delivered_after_it_restarts(
    tmp_path, make_settings, sink_process: SinkProcess
):
    server = EmbeddedRedis(tmp_path / "aof")
    url = server.start()
    # A shard re-run after the crash takes rate budget again; this test is about loss, not limits.
    rt = Runtime.start(make_settings(redis_url=url, shard_size=20, rate_limit="1000/hour"))
    subs = [
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink_process.url}/r/{i}"}).subscriber
        for i in range(SUBSCRIBERS)
    ]
    sink_process.answer_all(200, delay_s=0.01)
    worker = InProcessWorker.start(rt, threads=2)
    restarted = EmbeddedRedis(tmp_path / "aof")
    accepted: list[dict] = []
    refused: list[dict] = []
    try:
        for _ in range(9):
            event = incident_event()
            assert rt.publisher.publish(event).status == "accepted"
            accepted.append(event)
        assert wait_until(lambda: len(sink_process.arrived()) >= 100, timeout=60)
        last = incident_event()  # accepted just before the crash: it must survive it
        assert rt.publisher.publish(last).status == "accepted"
        accepted.append(last)
        assert server._process is not None
        os.kill(server._process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
        server._process.wait()
        server.stop()
        for _ in range(3):  # during the outage: refused, so never delivered
            event = incident_event()
            with pytest.raises(Exception):  # noqa: B017 - whatever the publisher raises, it did not accept
                rt.publisher.publish(event)
            refused.append(event)
        assert restarted.start() == url
        for event in accepted:
            summary = wait_done(rt, event["event_id"], timeout=90)
            assert summary["counts"]["delivered"] == SUBSCRIBERS, summary
    finally:
        worker.stop()
        rt.close()
        restarted.stop()
    seen = {i for _, i in sink_process.arrived()}
    planned = {delivery_id(ref(e), s.id, "webhook") for e in accepted for s in subs}
    assert seen == planned  # every accepted event reached everyone; no refused event reached anyone
    assert not {delivery_id(ref(e), s.id, "webhook") for e in refused for s in subs} & seen
