"""Signed one-click unsubscribe links (RFC 8058), and the link keys that sign them.

A token reads ``<key id>.<expires, hex seconds>.<mac>``. The MAC (HMAC-SHA256, 18 bytes)
covers the page, the subscriber id, the subscriber's *target* and the expiry: a link stops
working when the address it was sent to is no longer the subscriber's, and after
``NOTIFYD_UNSUBSCRIBE_LINK_TTL_S`` (180 days by default; CAN-SPAM asks for 30 at least).

Link keys rotate. The newest signs; the one before it still verifies, so a link in an
email sent before a rotation keeps working until the next one. They are configured
(``NOTIFYD_UNSUBSCRIBE_SECRET="new,old"``) or generated and kept in Redis, sealed with the
secret keyring (``notifyd secrets rotate-link-key`` rotates those). The same keys sign the
self-service confirm and preference links (notifyd/selfservice/links.py).

Tokens written before key ids (a bare MAC over page and subscriber, no expiry) are still
accepted under either link key, until two rotations retire the key that made them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import redis

from notifyd.state.keys import Keys
from notifyd.state.sealing import Keyring, stored_random_key

#: Link keys kept: the one that signs, and the one before it (links live one rotation back).
KEPT = 2
#: How long a process uses the link keys it read before it reads them again (a rotation by
#: another process reaches it within this; a token naming a key id it does not know makes
#: it read them at once).
REFRESH_S = 30.0
#: A token naming an unknown key id re-reads the keys at most this often (forged ids are cheap).
UNKNOWN_KID_REFRESH_S = 1.0


class BadLink(ValueError):
    """The link is not valid (forged, for another subscriber or target) or has expired."""


def link_key_id(key: bytes) -> str:
    return hashlib.sha256(b"notifyd link key id\x00" + key).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class LinkKey:
    kid: str
    key: bytes = field(repr=False)

    @classmethod
    def of(cls, key: bytes) -> LinkKey:
        return cls(link_key_id(key), key)


@dataclass(frozen=True, slots=True)
class LinkKeys:
    """Newest first; the first signs."""

    keys: tuple[LinkKey, ...]

    @property
    def signing(self) -> LinkKey:
        return self.keys[0]

    def by_kid(self, kid: str) -> LinkKey | None:
        return next((k for k in self.keys if k.kid == kid), None)


class LinkKeySource:
    """The deployment's link keys, read through a short cache by every process."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        keyring: Keyring,
        configured: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.redis_key = keys.link_keys()
        self.keyring = keyring
        self.context = f"link-keys\x1f{keys.ns}"
        self.configured = (
            LinkKeys(tuple(LinkKey.of(k.strip().encode()) for k in configured.split(",") if k.strip()))
            if configured and configured.strip()
            else None
        )
        self.clock = clock
        self._cached: LinkKeys | None = None
        self._read_at = 0.0
        self._unknown_at = -UNKNOWN_KID_REFRESH_S
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LinkKeySource(configured={self.configured is not None})"

    def current(self) -> LinkKeys:
        if self.configured is not None:
            return self.configured
        with self._lock:
            if self._cached is None or self.clock() - self._read_at >= REFRESH_S:
                self._cached = self._load()
                self._read_at = self.clock()
            return self._cached

    def refresh(self) -> LinkKeys:
        """Read the keys now (after a rotation in this process, say), not at the next REFRESH_S."""
        with self._lock:
            self._cached = None
        return self.current()

    def key_for(self, kid: str) -> LinkKey | None:
        """The link key with this id, re-reading the keys (rate-limited) when it is not known."""
        found = self.current().by_kid(kid)
        if found is not None or self.configured is not None:
            return found
        with self._lock:
            if self.clock() - self._unknown_at < UNKNOWN_KID_REFRESH_S:
                return None
            self._unknown_at = self.clock()
            self._cached = self._load()
            self._read_at = self.clock()
            return self._cached.by_kid(kid)

    def _load(self) -> LinkKeys:
        stored = stored_random_key(self.client, self.redis_key, self.keyring, self.context)
        plain = self.keyring.open(stored, self.context)
        if not self.keyring.is_current(stored):
            # A legacy clear key (or one sealed with an older secret key): sealed anew at once.
            self._replace(stored, self.keyring.seal(plain, self.context))
        return LinkKeys(tuple(LinkKey.of(k.encode()) for k in plain.split(",")[:KEPT]))

    def _replace(self, expected: str, new: str) -> bool:
        """Write ``new`` if the stored value is still ``expected``; False if another process won."""
        done: list[bool] = []

        def write(pipe: redis.client.Pipeline) -> None:
            current = pipe.get(self.redis_key)
            done[:] = [current is not None and current.decode() == expected]
            if done[0]:
                pipe.multi()
                pipe.set(self.redis_key, new)

        self.client.transaction(write, self.redis_key)
        return bool(done and done[0])

    def rotate(self) -> LinkKeys:
        """A new link key signs from now on; the current one still verifies; the one before it
        no longer does. Configured link keys are rotated by configuration instead."""
        if self.configured is not None:
            raise ValueError(
                'the link keys come from NOTIFYD_UNSUBSCRIBE_SECRET: rotate them there ("new,old")'
            )
        while True:
            raw = self.client.get(self.redis_key)
            if raw is None:
                self._load()
                continue
            stored = raw.decode()
            kept = self.keyring.open(stored, self.context).split(",")[: KEPT - 1]
            plain = ",".join([secrets.token_hex(32), *kept])
            if self._replace(stored, self.keyring.seal(plain, self.context)):
                break
        return self.refresh()

    def rewrap(self) -> bool:
        """Re-seal the stored link keys with the newest secret key; True when that was needed."""
        if self.configured is not None:
            return False
        raw = self.client.get(self.redis_key)
        if raw is None or self.keyring.is_current(raw.decode()):
            return False
        self._load()
        return True


def _mac(key: bytes, *parts: str) -> str:
    digest = hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def token(key: LinkKey, page_id: str, subscriber_id: str, target: str, expires: int) -> str:
    mac = _mac(key.key, "unsubscribe", page_id, subscriber_id, target, str(expires))
    return f"{key.kid}.{expires:x}.{mac}"


def verify(
    source: LinkKeySource,
    page_id: str,
    subscriber_id: str,
    target: str,
    candidate: str,
    *,
    now: float | None = None,
) -> None:
    """Raise :class:`BadLink` unless ``candidate`` is this subscriber's link at this target."""
    if not candidate.isascii():  # compare_digest raises on other text
        raise BadLink("this unsubscribe link is not valid")
    kid, dot, rest = candidate.partition(".")
    if not dot:
        # A token from before key ids: a MAC over page and subscriber only, under a kept key.
        for kept in source.current().keys:
            if hmac.compare_digest(_mac(kept.key, page_id, subscriber_id), candidate):
                return
        raise BadLink("this unsubscribe link is not valid")
    expires_hex, dot, mac = rest.partition(".")
    try:
        expires = int(expires_hex, 16)
    except ValueError:
        dot = ""
    key = source.key_for(kid) if dot else None
    if key is None:
        raise BadLink("this unsubscribe link is not valid")
    good = _mac(key.key, "unsubscribe", page_id, subscriber_id, target, str(expires))
    if not hmac.compare_digest(good, mac):
        raise BadLink("this unsubscribe link is not valid")
    if expires < (time.time() if now is None else now):
        raise BadLink("this unsubscribe link has expired; the newest notification carries a working one")


def url(
    public_url: str,
    key: LinkKey,
    page_id: str,
    subscriber_id: str,
    target: str,
    ttl_s: int,
    *,
    now: float | None = None,
) -> str:
    expires = int((time.time() if now is None else now) + ttl_s)
    return (
        f"{public_url.rstrip('/')}/v1/pages/{quote(page_id, safe='')}/unsubscribe"
        f"?subscriber={quote(subscriber_id, safe='')}"
        f"&token={token(key, page_id, subscriber_id, target, expires)}"
    )
