"""Quiet hours: deferred to the window's end and digested; critical passes unless told otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifyd.preferences import QuietWindow
from notifyd.state.subscribers import SubscriberError
from tests.support.events import incident_event
from tests.support.wait import wait_until
from tests.test_digest import Clock

BERLIN = ZoneInfo("Europe/Berlin")


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


@pytest.mark.parametrize(
    ("now", "end"),
    [
        ("2026-12-04 23:30", "2026-12-05 07:00"),  # after the start, before midnight
        ("2026-12-05 03:00", "2026-12-05 07:00"),  # after midnight
        ("2026-12-05 07:00", None),  # the end is outside
        ("2026-12-05 12:00", None),
        ("2026-12-05 22:00", "2026-12-06 07:00"),  # the start is inside
    ],
)
def test_a_window_over_midnight_ends_at_the_next_local_end(now, end):
    window = QuietWindow("Europe/Berlin", time(22, 0), time(7, 0))
    expected = _at(end) if end else None
    assert window.end_after(_at(now)) == expected


def test_a_window_within_a_day_and_an_empty_one():
    lunch = QuietWindow("UTC", time(12, 0), time(14, 0))
    noon = datetime(2026, 12, 5, 13, 0, tzinfo=UTC).timestamp()
    assert lunch.end_after(noon) == datetime(2026, 12, 5, 14, 0, tzinfo=UTC).timestamp()
    assert lunch.end_after(noon + 3 * 3600) is None
    assert QuietWindow("UTC", time(9, 0), time(9, 0)).end_after(noon) is None


def test_quiet_hours_with_an_unknown_zone_are_refused(runtime):
    rt = runtime()
    with pytest.raises(SubscriberError, match="time zone"):
        rt.subscribers.add(
            "acme",
            {
                "channel": "webhook",
                "target": "https://e.com/h",
                "quiet_hours": {"tz": "Mars/Base", "start": "22:00", "end": "07:00"},
            },
        )


def _quiet_around(now: float, *, allow_critical: bool = True) -> dict:
    start = datetime.fromtimestamp(now - 3600, UTC).strftime("%H:%M")
    end = datetime.fromtimestamp(now + 3600, UTC).strftime("%H:%M")
    return {"tz": "UTC", "start": start, "end": end, "allow_critical": allow_critical}


def _event(n: int, impact: str, incident: str) -> dict:
    at = datetime.now(UTC) + timedelta(seconds=n)
    return incident_event(
        type="incident_updated",
        occurred_at=at.isoformat().replace("+00:00", "Z"),
        incident={"id": incident, "title": f"Outage {incident}", "status": "identified", "impact": impact},
    )


def _status(rt, event_id: str) -> str | None:
    records = rt.tracker.bucket_records(rt.tracker.find(event_id), 0)
    return next(iter(records.values())).status if records else None


def test_minor_waits_for_the_end_of_quiet_hours_and_critical_passes_at_once(runtime, sink, start_worker):
    clock = Clock()
    rt = runtime(schedule_poll_ms=20)
    rt.subscribers.add(
        "acme", {"channel": "webhook", "target": f"{sink.url}/q", "quiet_hours": _quiet_around(clock())}
    )
    start_worker(rt, clock=clock)
    critical, minor = _event(1, "critical", "inc-c"), _event(2, "minor", "inc-m")
    rt.publisher.publish(critical)
    assert wait_until(lambda: _status(rt, critical["event_id"]) == "delivered")
    rt.publisher.publish(minor)
    assert wait_until(lambda: _status(rt, minor["event_id"]) == "deferred")
    assert len(sink.received) == 1
    clock.advance(1800)  # still quiet: the digest job moves on to the window's end
    assert not wait_until(lambda: len(sink.received) > 1, timeout=0.5)
    clock.advance(1900)
    assert wait_until(lambda: len(sink.received) == 2)
    body = json.loads(sink.received[1].body)
    assert body["type"] == "digest" and body["summary"] == ["Outage inc-m; now: identified"]
    assert wait_until(lambda: _status(rt, minor["event_id"]) == "digested")


def test_critical_waits_too_when_the_subscriber_says_so(runtime, sink, start_worker):
    clock = Clock()
    rt = runtime(schedule_poll_ms=20)
    quiet = _quiet_around(clock(), allow_critical=False)
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/q", "quiet_hours": quiet})
    start_worker(rt, clock=clock)
    critical = _event(1, "critical", "inc-c")
    rt.publisher.publish(critical)
    assert wait_until(lambda: _status(rt, critical["event_id"]) == "deferred")
    assert sink.received == []
    clock.advance(3700)
    assert wait_until(lambda: _status(rt, critical["event_id"]) == "digested")
    assert len(sink.received) == 1
