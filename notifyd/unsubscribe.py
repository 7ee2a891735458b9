"""Signed one-click unsubscribe links (RFC 8058), verified by the API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import quote

import redis

from notifyd.state.keys import Keys


def signing_key(client: redis.Redis, keys: Keys, configured: str | None) -> bytes:
    """The configured secret, or one generated once and shared through Redis by every process."""
    if configured:
        return configured.encode()
    key = f"{keys.ns}:unsubscribe-key"
    client.set(key, secrets.token_hex(32), nx=True)
    raw = client.get(key)
    assert raw is not None
    return bytes(raw)


def token(key: bytes, page_id: str, subscriber_id: str) -> str:
    mac = hmac.new(key, f"{page_id}\x1f{subscriber_id}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode()


def verify(key: bytes, page_id: str, subscriber_id: str, candidate: str) -> bool:
    return hmac.compare_digest(token(key, page_id, subscriber_id), candidate)


def url(public_url: str, key: bytes, page_id: str, subscriber_id: str) -> str:
    return (
        f"{public_url.rstrip('/')}/v1/pages/{quote(page_id, safe='')}/unsubscribe"
        f"?subscriber={quote(subscriber_id, safe='')}&token={token(key, page_id, subscriber_id)}"
    )
