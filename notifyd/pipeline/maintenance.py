"""Scheduled maintenance: announce it, remind before it, start and complete it on time.

Ingest hands every maintenance event to :meth:`MaintenancePlanner.on_event`,
which keeps the page's working copy of the window (``state/maintenances.py``)
and its jobs in the durable schedule (``state/schedule.py``): a reminder
``NOTIFYD_MAINTENANCE_REMINDER_S`` before the start (per page:
``NOTIFYD_MAINTENANCE_REMINDER_PAGES``), and with ``auto_transition`` the
start and the completion. A job's id names the maintenance and the phase, so
a rescheduled window moves its jobs and a cancelled one removes them.

A due job publishes an ordinary event under an id fixed by the maintenance,
the phase and the scheduled time. Run twice (a worker killed after
publishing, before removing the job), the second publish is a duplicate:
each reminder, start and completion is delivered once.

While a window runs, ``component_status_changed`` events for its components
are suppressed with the filter reason ``maintenance`` (:class:`MaintenanceWindows`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from notifyd.models import Event, EventType
from notifyd.pipeline.filters import StoreVerdict
from notifyd.publish import Publisher
from notifyd.runtime.settings import Settings
from notifyd.state.maintenances import MaintenanceRepo, Window
from notifyd.state.schedule import Schedule

log = logging.getLogger("notifyd.pipeline.maintenance")

JOB_PREFIX = "maint\x1f"
REMINDER, START, COMPLETE = "reminder", "start", "complete"
PHASE_EVENT = {
    REMINDER: EventType.maintenance_scheduled,
    START: EventType.maintenance_started,
    COMPLETE: EventType.maintenance_completed,
}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def job_id(page_id: str, maintenance_id: str, phase: str) -> str:
    return f"{JOB_PREFIX}{phase}\x1f{page_id}\x1f{maintenance_id}"


def phase_event_id(page_id: str, window: Window, phase: str, at: float) -> str:
    """Fixed by the page, the maintenance, the phase and when it was due: publishing twice is a duplicate."""
    who = hashlib.blake2b(f"{page_id}\x1f{window.id}".encode(), digest_size=8).hexdigest()
    return f"maint-{who}-{phase}-{int(at)}"


class MaintenancePlanner:
    def __init__(
        self,
        *,
        repo: MaintenanceRepo,
        schedule: Schedule,
        publisher: Publisher,
        settings: Settings,
        clock: Callable[[], float],
    ) -> None:
        self.repo = repo
        self.schedule = schedule
        self.publisher = publisher
        self.settings = settings
        self.clock = clock

    # -- ingest ---------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        m = event.maintenance
        if m is None:
            return
        page = event.page_id
        known = self.repo.get(page, m.id)
        window = Window(
            id=m.id,
            title=m.title,
            message=m.message,
            starts_at=_iso(m.starts_at.timestamp()),
            ends_at=_iso(m.ends_at.timestamp()),
            components=list(m.components),
            auto_transition=m.auto_transition,
            running=known.running if known is not None else False,
        )
        kind = event.type
        if event.event_id == phase_event_id(page, window, REMINDER, m.starts_at.timestamp()):
            return  # our own reminder: it changes nothing (and its text is not the window's message)
        if kind in (EventType.maintenance_completed, EventType.maintenance_cancelled):
            self.repo.remove(page, m.id)
            for phase in PHASE_EVENT:
                self.schedule.remove(job_id(page, m.id, phase))
            return
        if kind is EventType.maintenance_started:
            window = Window(**{**asdict(window), "running": True})
        self.repo.put(page, window)
        self._plan(page, window)

    def _plan(self, page_id: str, window: Window) -> None:
        now = self.clock()
        starts, ends = _ts(window.starts_at), _ts(window.ends_at)
        payload = json.dumps(asdict(window))
        due: dict[str, float | None] = {REMINDER: None, START: None, COMPLETE: None}
        lead = self.settings.maintenance_reminder(page_id)
        if lead > 0 and not window.running and starts - lead > now:
            due[REMINDER] = starts - lead
        if window.auto_transition:
            due[START] = None if window.running else starts
            due[COMPLETE] = ends
        for phase, at in due.items():
            job = job_id(page_id, window.id, phase)
            if at is None:
                self.schedule.remove(job)
            else:
                self.schedule.add(job, at, payload)

    # -- due jobs -------------------------------------------------------------------

    def run_job(self, job: str) -> bool:
        """Publish what a due maintenance job stands for; False when the job is not a maintenance's."""
        if not job.startswith(JOB_PREFIX):
            return False
        phase, page_id, _ = job.removeprefix(JOB_PREFIX).split("\x1f", 2)
        payload = self.schedule.payload(job)
        if payload is None or phase not in PHASE_EVENT:
            self.schedule.remove(job)
            return True
        window = Window(**json.loads(payload))
        at = {REMINDER: _ts(window.starts_at), START: _ts(window.starts_at), COMPLETE: _ts(window.ends_at)}[
            phase
        ]
        message = window.message
        if phase == REMINDER:
            lead = max(0, round(at - self.clock()))
            when = f"{round(lead / 60)} min" if lead >= 90 else f"{lead} s"
            message = f"Reminder: starts in {when}. {message}".strip()
        event: dict[str, Any] = {
            "event_id": phase_event_id(page_id, window, phase, at),
            "type": PHASE_EVENT[phase].value,
            "page_id": page_id,
            "occurred_at": _iso(self.clock() if phase == REMINDER else at),
            "maintenance": {
                "id": window.id,
                "title": window.title,
                "message": message,
                "starts_at": window.starts_at,
                "ends_at": window.ends_at,
                "components": window.components,
                "auto_transition": window.auto_transition,
            },
        }
        result = self.publisher.publish(event)
        log.info("maintenance %s %s on %s: %s", window.id, phase, page_id, result.status)
        # Removed only once published: a worker killed in between runs it again, as a duplicate.
        if self.schedule.payload(job) == payload:  # not rescheduled meanwhile
            self.schedule.remove(job)
        return True


class MaintenanceWindows:
    """Ingest filter: a component alert for a component in a running maintenance window stays quiet."""

    name = "maintenance"

    def __init__(self, repo: MaintenanceRepo) -> None:
        self.repo = repo

    def reason(self, event: Event, verdict: StoreVerdict) -> str | None:
        if event.component is None or event.type is not EventType.component_status_changed:
            return None
        if event.component.id in self.repo.running_components(event.page_id):
            return f"component {event.component.id} is in a running maintenance window"
        return None
