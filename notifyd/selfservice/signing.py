"""Signed, expiring, purpose-bound tokens for the links a subscriber clicks.

A token is ``<payload>.<mac>``: the payload is URL-safe base64 of
``purpose|page|subject|expires``, and the MAC is HMAC-SHA256 over it under the
deployment's newest link key (the keys that sign unsubscribe links, see
:class:`notifyd.unsubscribe.LinkKeySource`). The purpose is inside the MAC, so a
"manage" token can never be replayed as a "confirm" one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass

#: Purposes a token can carry.
CONFIRM = "confirm"
MANAGE = "manage"
FOLLOW = "follow"


class BadToken(ValueError):
    """The token is malformed, forged, for another purpose or page, or expired; the message says which."""


@dataclass(frozen=True, slots=True)
class Claims:
    purpose: str
    page_id: str
    subject: str
    expires: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:20])


def sign(
    key: bytes, purpose: str, page_id: str, subject: str, ttl_s: int, *, now: float | None = None
) -> str:
    expires = int((time.time() if now is None else now) + ttl_s)
    payload = _b64("\x1f".join((purpose, page_id, subject, str(expires))).encode())
    return f"{payload}.{_mac(key, payload)}"


def verify(
    key: bytes, token: str, purpose: str, page_id: str | None = None, *, now: float | None = None
) -> Claims:
    payload, dot, mac = token.partition(".")
    if not dot or not token.isascii() or not hmac.compare_digest(_mac(key, payload), mac):
        raise BadToken("this link is not valid")
    try:
        parts = _unb64(payload).decode().split("\x1f")
        kind, page, subject, expires = parts
        claims = Claims(kind, page, subject, int(expires))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadToken("this link is not valid") from None
    if claims.purpose != purpose or (page_id is not None and claims.page_id != page_id):
        raise BadToken("this link is not valid here")
    if claims.expires < (time.time() if now is None else now):
        raise BadToken("this link has expired")
    return claims
