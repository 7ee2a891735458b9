"""Stable identifiers: the delivery id every retry and redrive keeps."""

from __future__ import annotations

import base64
import hashlib
import secrets


def delivery_id(event_id: str, subscriber_id: str, channel: str) -> str:
    digest = hashlib.blake2b(f"{event_id}\x1f{subscriber_id}\x1f{channel}".encode(), digest_size=15).digest()
    return "dlv_" + base64.b32encode(digest).decode().lower()


def new_subscriber_id() -> str:
    return "sub_" + secrets.token_hex(8)
