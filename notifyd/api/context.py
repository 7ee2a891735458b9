"""What every route needs, built once per app and kept on ``app.state``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from notifyd.api.keystore import DashboardSessions, KeyStore
from notifyd.api.ratelimit import AuthThrottle, PublishLimiter
from notifyd.runtime.wiring import Runtime


@dataclass
class ApiContext:
    runtime: Runtime
    store: Any | None
    keystore: KeyStore
    limiter: PublishLimiter
    auth_throttle: AuthThrottle
    sessions: DashboardSessions
    #: notifyd.selfservice.wiring.SelfService: sign-up, confirmation, preferences.
    selfservice: Any = None
    _unsubscribe_key: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def redrive(self, ref: str) -> int:
        """Move the event's failed deliveries back to retrying and enqueue them; never sends here."""
        from notifyd.pipeline.retry import redrive
        from notifyd.pipeline.steps import StepQueue

        queue = StepQueue(self.runtime.broker, self.runtime.keys)
        return redrive(self.runtime.tracker, queue, ref, batch=self.runtime.settings.shard_size)

    def unsubscribe_key(self) -> bytes:
        with self._lock:
            if self._unsubscribe_key is None:
                from notifyd import unsubscribe

                configured = self.runtime.settings.unsubscribe_secret
                self._unsubscribe_key = unsubscribe.signing_key(
                    self.runtime.client,
                    self.runtime.keys,
                    configured.get_secret_value() if configured else None,
                )
            return self._unsubscribe_key


def context_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
