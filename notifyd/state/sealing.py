"""Secrets at rest: what notifyd keeps in Redis that must not be readable there.

Webhook signing secrets, the secrets of pending sign-ups, the link keys that sign
unsubscribe and preference links, and Slack incoming-webhook URLs (a subscriber's target
that is itself a credential) are sealed with AES-256-GCM before they are written.
A sealed value reads ``nsec1:<key id>:<base64url(nonce + ciphertext + tag)>``.

The :class:`Keyring` holds the deployment's secret keys (``NOTIFYD_SECRET_KEY``, see
notifyd/runtime/secret_key.py), newest first: the newest seals, every one opens, and the
key id in a sealed value says which one to use. Rotating is: put a new key first, restart,
then re-seal what is stored (``notifyd secrets rewrap``) before the old key is dropped.

Each value is sealed for a *context* (the AEAD's associated data), such as the page,
channel and target of the subscriber it belongs to. A sealed value copied onto another
record does not open there: whoever can write to Redis cannot move one endpoint's
signing secret to an endpoint of their own.

A stored value without the ``nsec1:`` prefix is a legacy clear one, written before
secrets were sealed: it is read as it is, and sealed when it is next written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    import redis

#: The sealed form's version tag; a value that does not start with it is legacy clear text.
PREFIX = "nsec1:"
#: A configured key shorter than this is refused: it is a password, not a key.
MIN_KEY_LENGTH = 32
_NONCE = 12
_INFO = b"notifyd secrets at rest v1"


class SealError(ValueError):
    """A sealed value cannot be opened. The message names the key id, never a key or a secret.

    ``reason`` says the same in a few words that fit a delivery record (tracking keeps 40
    characters): the pipeline records it on each delivery it could not send for this.
    """

    def __init__(self, message: str, *, reason: str = "sealed: does not open") -> None:
        super().__init__(message)
        self.reason = reason


def generate_key() -> str:
    """A new secret key, as ``NOTIFYD_SECRET_KEY`` takes it (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def key_id(key: str) -> str:
    """A key's public id: 8 hex digits of a hash that reveals nothing usable about the key."""
    return hashlib.sha256(b"notifyd key id\x00" + key.encode()).hexdigest()[:8]


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def sealed_key_id(stored: str) -> str | None:
    """The id of the key a stored value was sealed with; None for a legacy clear value."""
    if not is_sealed(stored):
        return None
    return stored[len(PREFIX) :].partition(":")[0]


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    aead: AESGCM = field(repr=False)


class Keyring:
    """The secret keys, newest first. Its repr names key ids only."""

    def __init__(self, keys: Sequence[str], *, source: str = "configured") -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        made: list[_Key] = []
        for key in keys:
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(f"a secret key must have at least {MIN_KEY_LENGTH} characters")
            derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode())
            made.append(_Key(key_id(key), AESGCM(derived)))
        kids = [k.kid for k in made]
        if len(set(kids)) != len(kids):
            raise ValueError("the same secret key is listed twice")
        self._keys = {k.kid: k for k in made}
        self._newest = made[0]
        #: Where the keys came from ("NOTIFYD_SECRET_KEY", a file's path, ...), for messages.
        self.source = source

    def __repr__(self) -> str:
        return f"Keyring(kids={list(self._keys)!r}, source={self.source!r})"

    @property
    def newest_kid(self) -> str:
        return self._newest.kid

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plain: str, context: str) -> str:
        """``plain`` sealed with the newest key, for ``context`` only."""
        nonce = os.urandom(_NONCE)
        body = self._newest.aead.encrypt(nonce, plain.encode(), context.encode())
        return f"{PREFIX}{self._newest.kid}:{base64.urlsafe_b64encode(nonce + body).decode()}"

    def open(self, stored: str, context: str) -> str:
        """The clear value of a stored one (a legacy clear value is returned as it is)."""
        if not is_sealed(stored):
            return stored
        kid, _, body = stored[len(PREFIX) :].partition(":")
        key = self._keys.get(kid)
        if key is None:
            raise SealError(
                f"a secret is sealed with key id {kid}, which is not among the configured keys "
                f"({', '.join(self._keys)}): add that key back to {self.source}",
                reason=f"sealed: key id {kid} not configured",
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            return key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SealError(
                f"a secret sealed with key id {kid} does not open: "
                "it was altered, or copied from another record",
                reason=f"sealed: key id {kid} does not open",
            ) from None

    def is_current(self, stored: str) -> bool:
        """Sealed with the newest key: nothing to re-seal."""
        return sealed_key_id(stored) == self._newest.kid

    def reseal(self, stored: str, context: str) -> str | None:
        """The value sealed with the newest key, or None when it already is."""
        if self.is_current(stored):
            return None
        return self.seal(self.open(stored, context), context)


def stored_random_key(client: redis.Redis, redis_key: str, keyring: Keyring, context: str) -> str:
    """The value stored at ``redis_key`` as stored (sealed, or legacy clear): 32 random bytes
    in hex, sealed and written first if there is none (the first process to write wins)."""
    raw = client.get(redis_key)
    if raw is None:
        client.set(redis_key, keyring.seal(secrets.token_hex(32), context), nx=True)
        raw = client.get(redis_key)
        assert raw is not None
    return str(raw.decode())


def webhook_secret_context(page_id: str, channel: str, target: str) -> str:
    """A subscriber's secret opens only on the record of that (page, channel, target)."""
    return f"subscriber-secret\x1f{page_id}\x1f{channel}\x1f{target}"


def target_context(page_id: str, channel: str, digest: str) -> str:
    """A subscriber's sealed target opens only on a record of that page and channel whose index
    digest (notifyd/state/target_digests.py) is the one the target was sealed with."""
    return f"subscriber-target\x1f{page_id}\x1f{channel}\x1f{digest}"
