"""Provider send rates hold across steps and workers: sends over the rate wait, none is dropped."""

from __future__ import annotations

from notifyd.standins.servers import SMTPSink
from tests.support.events import incident_event, ref
from tests.support.wait import wait_until


def _most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_an_smtp_relay_rate_is_respected_and_mail_over_it_waits_as_delayed_work(runtime, start_worker):
    relay = SMTPSink().start()
    try:
        rt = runtime(smtp_host=relay.host, smtp_port=relay.port, smtp_rate_per_s=4.0, rate_limit="100/hour")
        # 14 mails at 4 a second: most of them over the rate (sent unshaped, all 14 would arrive
        # within a second), the last ones due seconds later, as delayed work.
        for i in range(7):
            rt.subscribers.add("acme", {"channel": "email", "target": f"user{i}@example.com"})
        start_worker(rt, threads=2)
        first, second = incident_event(), incident_event()
        rt.publisher.publish(first)
        rt.publisher.publish(second)
        for event in (first, second):
            assert wait_until(lambda e=event: rt.tracker.summary(ref(e))["state"] == "done", timeout=60)
            assert rt.tracker.summary(ref(event))["counts"]["delivered"] == 7
        assert len(relay.received) == 14
        # Four a second, counted at the relay; the scheduler is exact, one more is jitter.
        assert _most_in_one_second([m.at for m in relay.received]) <= 5
    finally:
        relay.stop()


def test_slack_gets_at_most_one_message_a_second_per_incoming_webhook(runtime, sink, start_worker):
    rt = runtime(slack_rate_per_s=1.0, rate_limit="100/hour")
    hook = f"{sink.url}/services/T0/B0/x"
    pages = [f"page{i}" for i in range(4)]
    for page in pages:  # one hook, subscribed from four pages: four messages to the same webhook
        rt.subscribers.add(page, {"channel": "slack", "target": hook})
    rt.subscribers.add("page0", {"channel": "slack", "target": f"{sink.url}/services/T0/B1/y"})
    start_worker(rt, threads=2)
    events = [incident_event(page=page) for page in pages]
    for event in events:
        rt.publisher.publish(event)
    for event in events:
        assert wait_until(lambda e=event: rt.tracker.summary(ref(e))["state"] == "done", timeout=60)
    on_hook = [r.at for r in sink.on("/services/T0/B0/x")]
    assert len(on_hook) == 4 and len(sink.on("/services/T0/B1/y")) == 1
    assert _most_in_one_second(on_hook) <= 2
