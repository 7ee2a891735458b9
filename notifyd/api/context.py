"""What every route needs, built once per app and kept on ``app.state``."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from notifyd.api.keystore import KeyStore
from notifyd.api.ratelimit import PublishLimiter
from notifyd.runtime.wiring import Runtime

if TYPE_CHECKING:
    from notifyd.pipeline.engine import Engine


@dataclass
class ApiContext:
    runtime: Runtime
    store: Any | None
    keystore: KeyStore
    limiter: PublishLimiter
    _engine: Engine | None = None
    _unsubscribe_key: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self) -> Engine:
        """The pipeline engine, for redrive only; it enqueues, it never sends from the API."""
        with self._lock:
            if self._engine is None:
                # Imported here: the pipeline pulls in the channel adapters, which most routes never need.
                from notifyd.pipeline.adapters import AdapterPool
                from notifyd.pipeline.engine import Engine

                self._engine = Engine(self.runtime, AdapterPool(self.runtime.settings), self.store)
            return self._engine

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

    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.adapters.close()


def context_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
