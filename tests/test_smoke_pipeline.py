from __future__ import annotations

from notifyd.runtime.worker import InProcessWorker
from tests.conftest import wait_until
from tests.support.events import incident_event


def test_published_incident_reaches_every_webhook_subscriber(runtime, sink):
    rt = runtime()
    for i in range(120):
        rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/hook/{i}"})
    worker = InProcessWorker.start(rt, threads=4)
    try:
        event = incident_event()
        assert rt.publisher.publish(event).status == "accepted"
        done = wait_until(lambda: (rt.tracker.summary(event["event_id"]) or {}).get("state") == "done")
        assert done, (rt.tracker.summary(event["event_id"]), len(sink.received))
        summary = rt.tracker.summary(event["event_id"])
        assert summary["counts"]["planned"] == 120
        assert summary["counts"]["delivered"] == 120
        assert len(sink.received) == 120
    finally:
        worker.stop()
