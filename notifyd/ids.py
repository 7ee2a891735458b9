"""Stable identifiers: the delivery id every retry and redrive keeps."""

from __future__ import annotations

import hashlib
import secrets

#: RFC 4648 base32, lower case; every pair of its letters (10 bits), in order.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _B32 for b in _B32)


def delivery_id(event_id: str, subscriber_id: str, channel: str) -> str:
    """``dlv_`` and the lower-case base32 of a 15-byte BLAKE2b digest (24 letters, no padding).

    The same text as ``base64.b32encode(digest).decode().lower()``, which a delivery id has
    always been (ids stay stable across versions), written out 10 bits at a time: base64's
    pure-Python base32 was the largest single cost of building a step's messages.
    """
    digest = hashlib.blake2b(f"{event_id}\x1f{subscriber_id}\x1f{channel}".encode(), digest_size=15).digest()
    n = int.from_bytes(digest, "big")
    p = _PAIRS
    return (
        f"dlv_{p[n >> 110]}{p[(n >> 100) & 1023]}{p[(n >> 90) & 1023]}{p[(n >> 80) & 1023]}"
        f"{p[(n >> 70) & 1023]}{p[(n >> 60) & 1023]}{p[(n >> 50) & 1023]}{p[(n >> 40) & 1023]}"
        f"{p[(n >> 30) & 1023]}{p[(n >> 20) & 1023]}{p[(n >> 10) & 1023]}{p[n & 1023]}"
    )


def new_subscriber_id() -> str:
    return "sub_" + secrets.token_hex(8)
