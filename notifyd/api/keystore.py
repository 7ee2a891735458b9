"""API keys: parsing ``NOTIFYD_API_KEYS``, generating keys, and the hashed keys kept in Redis.

Only a key's SHA-256 is ever stored or compared; the key itself is shown once,
when it is created. This module does not import FastAPI, so the CLI
(``notifyd keys create``) can use it cheaply.

Scopes: ``publish`` (POST /v1/events), ``operate`` (read events, deliveries,
queues, page status; redrive), ``admin`` (manage subscribers) and ``sync``
(store replication between peers). ``admin`` implies ``operate``: whoever may
manage subscribers may also look at what was delivered to them. Nothing
implies ``publish`` or ``sync``; those are kept for machines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

SCOPES: tuple[str, ...] = ("publish", "operate", "admin", "sync")
#: A scope a key holds also grants the scopes listed here.
IMPLIED: Mapping[str, frozenset[str]] = {"admin": frozenset({"operate"})}
KEY_PREFIX = "nk_"


class KeySpecError(ValueError):
    """A malformed key specification; the message says which entry, never the key."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes a key effectively holds, implied ones included."""
    held = set(scopes)
    for scope in list(held):
        held |= IMPLIED.get(scope, frozenset())
    return frozenset(held)


def parse_scopes(raw: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in raw.split("+") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if not scopes or unknown:
        raise KeySpecError(
            f"unknown scope(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SCOPES)}"
        )
    return scopes


def parse_env_keys(raw: str) -> dict[str, frozenset[str]]:
    """``key:scope[+scope],...`` as {sha256(key): scopes}. Errors name the entry by position only."""
    parsed: dict[str, frozenset[str]] = {}
    for position, entry in enumerate((e.strip() for e in raw.split(",")), 1):
        if not entry:
            continue
        key, sep, scopes = entry.rpartition(":")
        if not sep or not key:
            raise KeySpecError(f"NOTIFYD_API_KEYS entry {position} is not key:scope[+scope]")
        try:
            parsed[hash_key(key)] = parse_scopes(scopes)
        except KeySpecError as exc:
            raise KeySpecError(f"NOTIFYD_API_KEYS entry {position}: {exc}") from None
    return parsed


@dataclass(frozen=True, slots=True)
class StoredKey:
    digest: str
    scopes: frozenset[str]
    name: str
    created_at: float

    def public(self) -> dict[str, object]:
        # The digest prefix identifies the key for `keys revoke`; it cannot be reversed.
        return {
            "id": self.digest[:12],
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
        }


class KeyStore:
    """Keys from settings plus keys created with ``notifyd keys create`` (hashed in Redis)."""

    def __init__(
        self, client: redis.Redis, ns: str, static: Mapping[str, frozenset[str]] | None = None
    ) -> None:
        self.client = client
        self.redis_key = f"{ns}:apikeys"
        self.static = dict(static or {})

    def add_static(self, key: str, scopes: Iterable[str]) -> None:
        self.static[hash_key(key)] = frozenset(scopes)

    def scopes_for(self, key: str) -> frozenset[str] | None:
        """The effective scopes of ``key``, or None when it is unknown."""
        digest = hash_key(key)
        found: frozenset[str] | None = None
        # Compare against every configured digest, in constant time, whatever matches first.
        for candidate, scopes in self.static.items():
            if hmac.compare_digest(candidate, digest):
                found = scopes
        if found is None:
            raw = self.client.hget(self.redis_key, digest)
            if raw is not None:
                found = frozenset(json.loads(raw)["scopes"])
        return expand(found) if found is not None else None

    def create(self, scopes: Iterable[str], name: str = "") -> str:
        key = generate_key()
        record = {"scopes": sorted(set(scopes)), "name": name, "created_at": round(time.time(), 3)}
        self.client.hset(self.redis_key, hash_key(key), json.dumps(record))
        return key

    def stored(self) -> list[StoredKey]:
        keys = []
        for digest, raw in self.client.hgetall(self.redis_key).items():
            record = json.loads(raw)
            keys.append(
                StoredKey(
                    digest.decode() if isinstance(digest, bytes) else digest,
                    frozenset(record["scopes"]),
                    record.get("name", ""),
                    float(record.get("created_at", 0)),
                )
            )
        return sorted(keys, key=lambda k: k.created_at)

    def revoke(self, id_prefix: str) -> int:
        """Remove the stored keys whose digest starts with ``id_prefix`` (at least 8 hex digits)."""
        if len(id_prefix) < 8:
            raise KeySpecError("give at least 8 characters of the key id")
        doomed = [k.digest for k in self.stored() if k.digest.startswith(id_prefix.lower())]
        if doomed:
            self.client.hdel(self.redis_key, *doomed)
        return len(doomed)
