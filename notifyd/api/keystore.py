"""API keys: parsing ``NOTIFYD_API_KEYS``, generating keys, and the hashed keys kept in Redis.

Only a key's SHA-256 is ever stored or compared; the key itself is shown once,
when it is created. This module does not import FastAPI, so the CLI
(``notifyd keys create``) can use it cheaply.

Scopes: ``publish`` (POST /v1/events), ``operate`` (read events, deliveries,
queues, page status; redrive), ``admin`` (manage subscribers) and ``sync``
(store replication between peers). ``admin`` implies ``operate``: whoever may
manage subscribers may also look at what was delivered to them. Nothing
implies ``publish`` or ``sync``; those are kept for machines.

A key may also be limited (a :class:`Grant`): to some pages (``@acme+beta``;
without it, every page) and to the lanes up to a priority (``/high``). A
publish key without an explicit priority publishes ``normal`` and ``low``
only: the critical and high lanes are the ones real incidents rely on, so a
leaked CI key must not be able to flood them. ``NOTIFYD_API_KEYS`` writes it
``key:scope[+scope][@page[+page]][/priority]``. A key holding only ``sync`` names,
after ``@``, the one peer region it speaks for (``key:sync@eu``): its payloads must say
they come from that peer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from notifyd.runtime.settings import PRIORITIES

SCOPES: tuple[str, ...] = ("publish", "operate", "admin", "sync")
#: The lane a publish key reaches when it names none: everything below the incident lanes.
DEFAULT_MAX_PRIORITY = "normal"
#: One entry of NOTIFYD_API_KEYS. The key is matched lazily, so a key may contain ':';
#: page ids (``[A-Za-z0-9_.:-]``) contain neither '@' nor '/'.
_ENTRY = re.compile(
    r"^(?P<key>.+?):(?P<scopes>[a-z]+(?:\+[a-z]+)*)"
    r"(?:@(?P<pages>[^@/]+))?(?:/(?P<max>[a-z]+))?$"
)
_PAGE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
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


#: The shortest static key accepted; generated keys are ``nk_`` plus 43 characters.
MIN_KEY_LENGTH = 32
#: A key of 32 characters drawn from fewer distinct ones than this is a pattern, not a secret.
MIN_DISTINCT_CHARACTERS = 10
KEY_HINT = (
    "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` "
    "or `openssl rand -hex 32`, or store one in Redis with `notifyd keys create`"
)


def check_strength(key: str) -> None:
    """Refuse a configured key that can be guessed. The message never contains the key."""
    if len(key) < MIN_KEY_LENGTH:
        raise KeySpecError(f"the key is {len(key)} characters; use at least {MIN_KEY_LENGTH}: {KEY_HINT}")
    if len(set(key)) < MIN_DISTINCT_CHARACTERS:
        raise KeySpecError(f"the key repeats a few characters; use a random one: {KEY_HINT}")


def parse_pages(pages: Iterable[str] | None) -> frozenset[str] | None:
    """The pages a key is limited to (None: every page)."""
    if pages is None:
        return None
    parsed = frozenset(p.strip() for p in pages if p.strip())
    bad = sorted(p for p in parsed if not _PAGE.match(p))
    if not parsed or bad:
        raise KeySpecError(f"page ids are 1-128 of A-Z a-z 0-9 _ . : -; got {', '.join(bad) or '(none)'}")
    return parsed


def parse_priority(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw not in PRIORITIES:
        raise KeySpecError(f"unknown priority {raw!r}; choose from {', '.join(PRIORITIES)}")
    return raw


@dataclass(frozen=True, slots=True)
class Grant:
    """What a key may do: its scopes, the pages it reaches (None: all) and its highest lane."""

    scopes: frozenset[str]
    pages: frozenset[str] | None = None
    max_priority: str | None = None
    #: The one peer region a sync key speaks for (its X-Notifyd-Peer); None: any (older keys).
    peer: str | None = None

    def __post_init__(self) -> None:
        if self.pages is not None and "sync" in self.scopes:
            # A sync payload carries every page's state; a page-limited sync key would be a lie.
            raise KeySpecError("a sync key replicates every page; it cannot be limited with @pages")
        if self.peer is not None and self.scopes != {"sync"}:
            raise KeySpecError("only a key with the sync scope alone is bound to a peer")

    def effective(self) -> Grant:
        return Grant(expand(self.scopes), self.pages, self.max_priority, self.peer)

    @property
    def lane_cap(self) -> str:
        """The highest lane this key may publish to."""
        return self.max_priority or DEFAULT_MAX_PRIORITY

    def may_publish_at(self, priority: str) -> bool:
        return PRIORITIES.index(priority) >= PRIORITIES.index(self.lane_cap)

    def reaches(self, page_id: str) -> bool:
        return self.pages is None or page_id in self.pages

    def record(self) -> dict[str, object]:
        record: dict[str, object] = {"scopes": sorted(self.scopes)}
        if self.pages is not None:
            record["pages"] = sorted(self.pages)
        if self.max_priority is not None:
            record["max_priority"] = self.max_priority
        if self.peer is not None:
            record["peer"] = self.peer
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> Grant:
        scopes: Iterable[str] = record["scopes"]  # type: ignore[assignment]
        pages: Iterable[str] | None = record.get("pages")  # type: ignore[assignment]
        max_priority = record.get("max_priority")
        peer = record.get("peer")
        return cls(
            frozenset(scopes),
            frozenset(pages) if pages is not None else None,
            str(max_priority) if max_priority is not None else None,
            str(peer) if peer is not None else None,
        )


def parse_env_keys(raw: str) -> dict[str, Grant]:
    """``key:scope[+scope][@page[+page]][/priority],...`` as {sha256(key): grant}.

    Errors name the entry by position only, never the key.
    """
    parsed: dict[str, Grant] = {}
    for position, entry in enumerate((e.strip() for e in raw.split(",")), 1):
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None or not match["key"]:
            raise KeySpecError(
                f"NOTIFYD_API_KEYS entry {position} is not key:scope[+scope][@page[+page]][/priority]"
            )
        try:
            check_strength(match["key"])
            scopes = parse_scopes(match["scopes"])
            names = parse_pages(match["pages"].split("+")) if match["pages"] else None
            if scopes == {"sync"} and names is not None:
                # key:sync@eu: the key speaks for the peer region "eu" only.
                if len(names) != 1:
                    raise KeySpecError("a sync key is bound to one peer: key:sync@peer")
                grant = Grant(scopes, None, parse_priority(match["max"]), next(iter(names)))
            else:
                grant = Grant(scopes, names, parse_priority(match["max"]))
        except KeySpecError as exc:
            raise KeySpecError(f"NOTIFYD_API_KEYS entry {position}: {exc}") from None
        parsed[hash_key(match["key"])] = grant
    return parsed


@dataclass(frozen=True, slots=True)
class StoredKey:
    digest: str
    grant: Grant
    name: str
    created_at: float

    @property
    def scopes(self) -> frozenset[str]:
        return self.grant.scopes

    def public(self) -> dict[str, object]:
        # The digest prefix identifies the key for `keys revoke`; it cannot be reversed.
        return {
            "id": self.digest[:12],
            "name": self.name,
            **self.grant.record(),
            "created_at": self.created_at,
        }


class KeyStore:
    """Keys from settings plus keys created with ``notifyd keys create`` (hashed in Redis)."""

    def __init__(self, client: redis.Redis, ns: str, static: Mapping[str, Grant] | None = None) -> None:
        self.client = client
        self.redis_key = f"{ns}:apikeys"
        self.static = dict(static or {})

    def add_static(self, key: str, grant: Grant | Iterable[str]) -> None:
        self.static[hash_key(key)] = grant if isinstance(grant, Grant) else Grant(frozenset(grant))

    def grant_for(self, key: str) -> Grant | None:
        """What ``key`` may do (implied scopes included), or None when it is unknown."""
        return self.grant_for_digest(hash_key(key))

    def grant_for_digest(self, digest: str) -> Grant | None:
        """The same, by the key's SHA-256 (a dashboard session holds only that)."""
        found: Grant | None = None
        # Compare against every configured digest, in constant time, whatever matches first.
        for candidate, grant in self.static.items():
            if hmac.compare_digest(candidate, digest):
                found = grant
        if found is None:
            raw = self.client.hget(self.redis_key, digest)
            if raw is not None:
                found = Grant.from_record(json.loads(raw))
        return found.effective() if found is not None else None

    def scopes_for(self, key: str) -> frozenset[str] | None:
        """The effective scopes of ``key``, or None when it is unknown."""
        grant = self.grant_for(key)
        return grant.scopes if grant is not None else None

    def create(
        self,
        scopes: Iterable[str],
        name: str = "",
        *,
        pages: Iterable[str] | None = None,
        max_priority: str | None = None,
        peer: str | None = None,
    ) -> str:
        grant = Grant(frozenset(scopes), parse_pages(pages), parse_priority(max_priority), peer)
        key = generate_key()
        record = {**grant.record(), "name": name, "created_at": round(time.time(), 3)}
        self.client.hset(self.redis_key, hash_key(key), json.dumps(record))
        return key

    def stored(self) -> list[StoredKey]:
        keys = []
        for digest, raw in self.client.hgetall(self.redis_key).items():
            record = json.loads(raw)
            keys.append(
                StoredKey(
                    digest.decode() if isinstance(digest, bytes) else digest,
                    Grant.from_record(record),
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


#: How long a dashboard session lasts (its cookie's max-age).
SESSION_TTL_S = 12 * 3600


class DashboardSessions:
    """The dashboard's cookie holds a random session id, never the key.

    Redis maps the session id's SHA-256 to the key's SHA-256, for :data:`SESSION_TTL_S`; the
    session reaches what its key reaches, and dies with it (a revoked key's session finds no
    grant). Neither the cookie nor Redis holds anything that authenticates outside the dashboard.
    """

    def __init__(self, client: redis.Redis, ns: str) -> None:
        self.client = client
        self.prefix = f"{ns}:dsess:"

    def create(self, key: str) -> str:
        session = secrets.token_urlsafe(32)
        self.client.set(self.prefix + hash_key(session), hash_key(key), ex=SESSION_TTL_S)
        return session

    def digest_for(self, session: str) -> str | None:
        raw = self.client.get(self.prefix + hash_key(session))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
