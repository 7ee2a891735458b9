"""The one-click unsubscribe URL every email carries, signed with the deployment's link key."""

from __future__ import annotations

from collections.abc import Callable

from notifyd import unsubscribe
from notifyd.runtime.wiring import Runtime

#: (page_id, subscriber_id, target) -> the one-click unsubscribe URL that emails carry.
UnsubscribeLinks = Callable[[str, str, str], str]


def for_runtime(runtime: Runtime) -> UnsubscribeLinks:
    """``url(page_id, subscriber_id, target)``, signed with the newest link key."""
    settings = runtime.settings
    source = runtime.link_keys

    def url(page_id: str, subscriber_id: str, target: str) -> str:
        return unsubscribe.url(
            settings.public_url,
            source.current().signing,
            page_id,
            subscriber_id,
            target,
            settings.unsubscribe_link_ttl_s,
        )

    return url
