"""Scheduled maintenance: announcement, reminder, start and end at compressed times; durable jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from notifyd.models import Event
from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.engine import Engine
from notifyd.store import StatusStore
from tests.support.events import component_event, ref
from tests.support.wait import wait_until

PAGE = "acme"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def maintenance_event(kind: str, mid: str, starts_in: float, lasts: float, **extra) -> dict:
    now = datetime.now(UTC)
    return {
        "event_id": f"m-{uuid.uuid4().hex[:10]}",
        "type": f"maintenance_{kind}",
        "page_id": PAGE,
        "occurred_at": _iso(now),
        "maintenance": {
            "id": mid,
            "title": "Database upgrade",
            "message": "Postgres 17",
            "starts_at": _iso(now + timedelta(seconds=starts_in)),
            "ends_at": _iso(now + timedelta(seconds=starts_in + lasts)),
            "components": ["db"],
            **extra,
        },
    }


def _kinds(sink) -> list[tuple[str, str]]:
    out = []
    for r in sink.received:
        body = json.loads(r.body)
        message = body.get("maintenance", {}).get("message", "")
        out.append((body["type"], "reminder" if message.startswith("Reminder") else ""))
    return out


def test_maintenance_events_carry_a_window_with_rfc3339_times():
    ok = Event.model_validate(maintenance_event("scheduled", "mw-1", 60, 60))
    assert ok.lane == "normal" and ok.components_touched() == {"db"}
    naive = maintenance_event("scheduled", "mw-1", 60, 60)
    naive["maintenance"]["starts_at"] = "2026-12-05T10:00:00"
    with pytest.raises(ValidationError, match="RFC 3339"):
        Event.model_validate(naive)
    with pytest.raises(ValidationError, match="carry a 'maintenance' object"):
        Event.model_validate({**maintenance_event("started", "mw-1", 1, 1), "maintenance": None})


def test_the_status_store_keeps_a_maintenance_with_its_timeline(tmp_path):
    store = StatusStore.open(tmp_path / "s", node_id="n1")
    try:
        store.apply_event(maintenance_event("scheduled", "mw-1", 60, 60))
        started = maintenance_event("started", "mw-1", 60, 60)
        started["occurred_at"] = _iso(datetime.now(UTC) + timedelta(seconds=1))
        store.apply_event(started)
        (window,) = store.page_status(PAGE)["maintenances"]
        assert window["id"] == "mw-1" and window["status"] == "in_progress" and window["components"] == ["db"]
        assert [e["status"] for e in window["timeline"]] == ["scheduled", "in_progress"]
        assert store.page_status(PAGE)["open_incidents"] == []
        done = maintenance_event("completed", "mw-1", 60, 60)
        done["occurred_at"] = _iso(datetime.now(UTC) + timedelta(seconds=2))
        store.apply_event(done)
        assert "maintenances" not in store.page_status(PAGE)
    finally:
        store.close()
    again = StatusStore.open(tmp_path / "s", node_id="n1")  # and it survives a reload
    try:
        assert (
            again.export_state().pages[PAGE].incidents["maintenance\x1fmw-1"].value("status") == "completed"
        )
    finally:
        again.close()


def test_announcement_reminder_start_and_end_at_compressed_times_with_component_alerts_quiet(
    runtime, sink, start_worker
):
    rt = runtime(maintenance_reminder_s=2, schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    start_worker(rt)
    rt.publisher.publish(maintenance_event("scheduled", "mw-1", 4, 4, auto_transition=True))
    assert wait_until(lambda: ("maintenance_started", "") in _kinds(sink), timeout=15)
    assert _kinds(sink) == [
        ("maintenance_scheduled", ""),
        ("maintenance_scheduled", "reminder"),
        ("maintenance_started", ""),
    ]
    # Inside the window: the db alert is suppressed, an alert for another component is not.
    db_alert, api_alert = component_event(component="db"), component_event(component="api")
    rt.publisher.publish(db_alert)
    rt.publisher.publish(api_alert)
    assert wait_until(lambda: (rt.tracker.summary(ref(api_alert)) or {}).get("state") == "done")
    assert wait_until(lambda: (rt.tracker.summary(ref(db_alert)) or {}).get("state") == "done")
    db_summary = rt.tracker.summary(ref(db_alert))
    assert db_summary["suppressed_by"] == "maintenance" and db_summary["counts"]["planned"] == 0
    assert wait_until(lambda: ("maintenance_completed", "") in _kinds(sink), timeout=15)
    assert [k for k, _ in _kinds(sink)].count("component_status_changed") == 1
    assert rt.client.zcard(rt.keys.schedule()) == 0
    # After the window, db alerts are heard again.
    later = component_event(component="db")
    rt.publisher.publish(later)
    assert wait_until(lambda: (rt.tracker.summary(ref(later)) or {}).get("counts", {}).get("delivered") == 1)


def test_a_cancel_removes_the_reminder_and_a_reschedule_moves_it(runtime, sink, start_worker):
    rt = runtime(maintenance_reminder_s=3600, maintenance_reminder_pages=f"{PAGE}=600", schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    start_worker(rt)
    first = maintenance_event("scheduled", "mw-2", 7200, 600, auto_transition=True)
    rt.publisher.publish(first)
    reminder = f"maint\x1freminder\x1f{PAGE}\x1fmw-2"
    assert wait_until(lambda: reminder in _jobs(rt))
    starts = datetime.fromisoformat(first["maintenance"]["starts_at"].replace("Z", "+00:00")).timestamp()
    assert abs(_jobs(rt)[reminder] - (starts - 600)) < 1  # the page's own lead time
    moved = maintenance_event("updated", "mw-2", 9000, 600, auto_transition=True)
    rt.publisher.publish(moved)
    new_starts = datetime.fromisoformat(moved["maintenance"]["starts_at"].replace("Z", "+00:00")).timestamp()
    assert wait_until(lambda: abs(_jobs(rt).get(reminder, 0) - (new_starts - 600)) < 1)
    assert len(_jobs(rt)) == 3  # reminder, start, complete: the old ones were moved, not added to
    rt.publisher.publish(maintenance_event("cancelled", "mw-2", 9000, 600))
    assert wait_until(lambda: _jobs(rt) == {})
    assert wait_until(lambda: len(sink.received) == 3)
    assert sorted(k for k, _ in _kinds(sink)) == [
        "maintenance_cancelled",
        "maintenance_scheduled",
        "maintenance_updated",
    ]


def _jobs(rt) -> dict[str, float]:
    return {m.decode(): s for m, s in rt.client.zrange(rt.keys.schedule(), 0, -1, withscores=True)}


def test_a_reminder_run_twice_after_a_crash_is_delivered_once(runtime, sink, start_worker):
    rt = runtime(maintenance_reminder_s=3600, schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    engine = Engine(rt, AdapterPool(rt.settings))
    try:
        event = maintenance_event("scheduled", "mw-3", 7200, 600)
        engine.maintenance.on_event(Event.model_validate(event))
        job = f"maint\x1freminder\x1f{PAGE}\x1fmw-3"
        payload = engine.schedule.payload(job)
        engine.maintenance.run_job(job)
        # The worker "died" before it removed the job: it comes due again, with its payload.
        engine.schedule.add(job, 0, payload or "")
        engine.maintenance.run_job(job)
    finally:
        engine.close()
    start_worker(rt)
    assert wait_until(lambda: len(sink.received) == 1)
    assert not wait_until(lambda: len(sink.received) > 1, timeout=1.0)
    assert _kinds(sink) == [("maintenance_scheduled", "reminder")]


def test_a_worker_sigkilled_between_scheduling_and_the_reminder_loses_no_reminder(
    runtime, sink, start_worker
):
    rt = runtime(maintenance_reminder_s=4, schedule_poll_ms=20)
    rt.subscribers.add(PAGE, {"channel": "webhook", "target": f"{sink.url}/h"})
    s = rt.settings
    env = {
        **os.environ,
        "NOTIFYD_REDIS_URL": rt.url,
        "NOTIFYD_NAMESPACE": s.namespace,
        "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
        "NOTIFYD_POLL_TIMEOUT_MS": "20",
        "NOTIFYD_MAINTENANCE_REMINDER_S": "4",
        "NOTIFYD_DATA_DIR": str(s.data_dir),
    }
    victim = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "worker", "--threads", "2"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        warm_up = component_event(component="api")
        rt.publisher.publish(warm_up)  # the victim is up and working once this is delivered
        assert wait_until(lambda: len(sink.received) == 1, timeout=60)
        sink.received.clear()
        rt.publisher.publish(maintenance_event("scheduled", "mw-4", 7, 60))
        assert wait_until(lambda: len(sink.received) == 1, timeout=20)  # the announcement, by the victim
        assert f"maint\x1freminder\x1f{PAGE}\x1fmw-4" in _jobs(rt)  # the reminder is due in ~3 s
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(timeout=10)
    start_worker(rt)
    assert wait_until(lambda: len(sink.received) == 2, timeout=15)
    assert not wait_until(lambda: len(sink.received) > 2, timeout=1.0)
    assert _kinds(sink) == [("maintenance_scheduled", ""), ("maintenance_scheduled", "reminder")]
    assert _jobs(rt) == {}
