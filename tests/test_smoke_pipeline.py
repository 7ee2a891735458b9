from __future__ import annotations

from notifyd.runtime.worker import InProcessWorker
from tests.support.events import incident_event
from tests.support.wait import wait_done


def test_published_incident_reaches_every_webhook_subscriber(runtime, sink):
    rt = runtime()
    for i in range(120):
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/hook/{i}"})
    worker = InProcessWorker.start(rt, threads=4)
    try:
        event = incident_event()
        assert rt.publisher.publish(event).status == "accepted"
        summary = wait_done(rt, event["event_id"])
        assert summary["counts"]["planned"] == 120
        assert summary["counts"]["delivered"] == 120
        assert len(sink.received) == 120
    finally:
        worker.stop()
