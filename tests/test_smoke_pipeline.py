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


def test_a_worker_starts_without_a_duplicate_middleware_warning_but_others_still_warn(
    runtime, start_worker, caplog
):
    """Two thread pools mean two dramatiq workers, each with its own consumer middleware: that
    is by design and says nothing to the operator; any other duplicate still warns."""
    import dramatiq.middleware

    rt = runtime()
    with caplog.at_level("WARNING", logger="dramatiq"):
        start_worker(rt)
    assert len(rt.broker.middleware) > 0
    assert not [r for r in caplog.records if "same type twice" in r.getMessage()]
    rt.broker.add_middleware(dramatiq.middleware.AgeLimit())
    rt.broker.add_middleware(dramatiq.middleware.AgeLimit())
    assert [r for r in caplog.records if "same type twice" in r.getMessage() and "AgeLimit" in r.getMessage()]
