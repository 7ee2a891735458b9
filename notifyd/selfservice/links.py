"""The signed links a subscriber receives: confirm, manage subscription, follow an incident.

One owner for their URLs and for the key that signs them (the deployment's link key,
shared with one-click unsubscribe links).
"""

from __future__ import annotations

import threading
from urllib.parse import quote

import redis

from notifyd import unsubscribe
from notifyd.runtime.settings import Settings
from notifyd.selfservice import signing
from notifyd.state.keys import Keys


class Links:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    configured = self.settings.unsubscribe_secret
                    self._key = unsubscribe.signing_key(
                        self.client, self.keys, configured.get_secret_value() if configured else None
                    )
        return self._key

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
        return signing.verify(self.key, token, purpose, page_id)
