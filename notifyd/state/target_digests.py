"""Keyed digests of subscriber targets, for key names that must not hold a target in clear.

A Slack incoming-webhook URL is itself a credential: whoever holds it can post to that
channel. Where notifyd needs a target as part of a Redis key name (today: the Slack send
schedule of ``notifyd/pipeline/shaping.py``), it uses :meth:`TargetDigests.digest`, an
HMAC-SHA256 of the channel and target, instead of the target.

The HMAC key is a dedicated *index key*: 32 random bytes generated once per namespace and
kept in Redis sealed with the secret keys (notifyd/state/sealing.py), not a key derived
from ``NOTIFYD_SECRET_KEY``. A digest names a key that must stay the same across a rotation
of the secret key (every process must compute the same name, before and after ``notifyd
secrets rewrap``); a key derived from the newest secret key would change at each rotation,
and one derived from the oldest would be lost when that key is dropped. Rotating the secret
key re-seals the index key (``notifyd secrets rewrap``) and leaves it, and so every digest,
as it was. Each process reads it once: it never changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading

import redis

from notifyd.state.keys import Keys
from notifyd.state.sealing import Keyring, stored_random_key


class TargetDigests:
    """``digest(channel, target)``: a stable, keyed name for a target. Its repr shows no key."""

    def __init__(self, client: redis.Redis, keys: Keys, keyring: Keyring) -> None:
        self.client = client
        self.redis_key = keys.target_index_key()
        self.keyring = keyring
        self.context = f"target-index-key\x1f{keys.ns}"
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TargetDigests(loaded={self._key is not None})"

    def digest(self, channel: str, target: str) -> str:
        """22 URL-safe characters (128 bits) that name this (channel, target) and reveal nothing of it."""
        mac = hmac.new(self._index_key(), f"{channel}\x1f{target}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")

    def _index_key(self) -> bytes:
        key = self._key
        if key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._load()
                key = self._key
        return key

    def _load(self) -> bytes:
        stored = stored_random_key(self.client, self.redis_key, self.keyring, self.context)
        return bytes.fromhex(self.keyring.open(stored, self.context))

    def rewrap(self) -> bool:
        """Re-seal the stored index key with the newest secret key (the key itself stays, and
        with it every digest); True when that was needed."""
        done: list[bool] = []

        def write(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(self.redis_key)
            again = None if raw is None else self.keyring.reseal(raw.decode(), self.context)
            done[:] = [again is not None]
            if again is not None:
                pipe.multi()
                pipe.set(self.redis_key, again)

        self.client.transaction(write, self.redis_key)
        return bool(done and done[0])
