"""notifyd: notification delivery for status pages.

    import notifyd
    notifyd.publish({"event_id": "inc-42-created", "type": "incident_created", ...})

``publish`` returns once Redis holds the event (or says it is a duplicate).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from notifyd.models import Event, Subscriber
from notifyd.publish import EventError, PublishResult

if TYPE_CHECKING:
    from notifyd.runtime.wiring import Runtime

__version__ = "0.1.0"
__all__ = ["Event", "EventError", "PublishResult", "Subscriber", "publish"]

_default: Runtime | None = None
_lock = threading.Lock()


def _runtime() -> Runtime:
    global _default
    with _lock:
        if _default is None:
            from notifyd.runtime.wiring import Runtime

            _default = Runtime.start()
        return _default


def publish(event: dict[str, Any] | Event | str | bytes) -> PublishResult:
    """Validate and durably accept one event; raises EventError saying what is wrong."""
    return _runtime().publisher.publish(event)
