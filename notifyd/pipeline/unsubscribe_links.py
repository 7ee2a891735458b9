"""The one-click unsubscribe URL every email carries, signed with the deployment's key."""

from __future__ import annotations

import threading
from collections.abc import Callable

from notifyd import unsubscribe
from notifyd.runtime.wiring import Runtime


def for_runtime(runtime: Runtime) -> Callable[[str, str], str]:
    """``url(page_id, subscriber_id)``; the signing key is read (or created) on first use."""
    key: list[bytes] = []
    lock = threading.Lock()
    settings = runtime.settings

    def url(page_id: str, subscriber_id: str) -> str:
        if not key:
            with lock:
                if not key:
                    configured = settings.unsubscribe_secret
                    key.append(
                        unsubscribe.signing_key(
                            runtime.client,
                            runtime.keys,
                            configured.get_secret_value() if configured else None,
                        )
                    )
        return unsubscribe.url(settings.public_url, key[0], page_id, subscriber_id)

    return url
