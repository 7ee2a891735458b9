"""The signed links a subscriber receives: confirm, manage subscription, follow an incident.

One owner for their URLs; the keys that sign them are the deployment's link keys
(notifyd/unsubscribe.py), shared with one-click unsubscribe links: the newest signs,
and a link signed before the last rotation still verifies.
"""

from __future__ import annotations

from urllib.parse import quote

import redis

from notifyd.runtime.settings import Settings
from notifyd.selfservice import signing
from notifyd.state.keys import Keys
from notifyd.unsubscribe import LinkKeySource


class Links:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings, link_keys: LinkKeySource) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self.link_keys = link_keys

    @property
    def key(self) -> bytes:
        """The link key that signs now (the newest)."""
        return self.link_keys.current().signing.key

    @property
    def base(self) -> str:
        return self.settings.public_url.rstrip("/")

    def confirm_token(self, page_id: str, pending_id: str) -> str:
        return signing.sign(self.key, signing.CONFIRM, page_id, pending_id, self.settings.confirm_ttl_s)

    def confirm_url(self, page_id: str, pending_id: str) -> str:
        token = self.confirm_token(page_id, pending_id)
        return f"{self.base}/v1/pages/{quote(page_id, safe='')}/confirm?token={token}"

    def manage_token(self, page_id: str, subscriber_id: str) -> str:
        return signing.sign(self.key, signing.MANAGE, page_id, subscriber_id, self.settings.manage_link_ttl_s)

    def manage_url(self, page_id: str, subscriber_id: str) -> str:
        token = self.manage_token(page_id, subscriber_id)
        return f"{self.base}/status/{quote(page_id, safe='')}/preferences?token={token}"

    def follow_url(self, page_id: str, incident_id: str) -> str:
        return (
            f"{self.base}/status/{quote(page_id, safe='')}/subscribe?incident={quote(incident_id, safe='')}"
        )

    def verify(self, token: str, purpose: str, page_id: str) -> signing.Claims:
        """Claims of a token signed with the newest link key or the one before it."""
        keys = self.link_keys.current().keys
        for key in keys[:-1]:
            try:
                return signing.verify(key.key, token, purpose, page_id)
            except signing.BadToken:
                continue  # perhaps signed before the last rotation
        return signing.verify(keys[-1].key, token, purpose, page_id)
