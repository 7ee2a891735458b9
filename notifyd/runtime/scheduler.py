"""The worker's maintenance loop: run the schedule's due jobs (digests, maintenance reminders).

Every worker process runs one loop thread. Jobs are claimed with a lease
(``state/schedule.py``), so several workers share the schedule without
running a job twice, and a job whose worker died comes due again once its
lease runs out.
"""

from __future__ import annotations

import logging
import threading

import redis

from notifyd.pipeline.actors import EngineHolder

log = logging.getLogger("notifyd.runtime.scheduler")

#: Jobs claimed per round.
CLAIM_BATCH = 100


class SchedulerLoop:
    def __init__(self, holder: EngineHolder, *, poll_s: float) -> None:
        self.holder = holder
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifyd-scheduler", daemon=True)

    def start(self) -> SchedulerLoop:
        self._thread.start()
        return self

    def run_due(self) -> int:
        """Claim and run what is due now; returns how many jobs ran."""
        engine = self.holder.get()
        jobs = engine.schedule.claim(engine.clock(), limit=CLAIM_BATCH)
        for job in jobs:
            if self._stop.is_set():
                break  # the lease hands the rest to another worker
            try:
                engine.run_job(job)
            except Exception:  # noqa: BLE001 - one broken job must not stop the others
                log.exception("scheduled job %r failed; it comes due again after its lease", job)
        return len(jobs)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                while self.run_due() >= CLAIM_BATCH and not self._stop.is_set():
                    pass
            except redis.RedisError:
                log.debug("schedule unavailable; trying again in a while")
            except Exception:  # noqa: BLE001
                log.exception("scheduler round failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
