"""Double opt-in: a sign-up waits, ``pending``, until its owner confirms it.

A pending sign-up is one JSON record with a TTL (``confirm_ttl_s``): an unconfirmed
one simply expires. Its webhook secret and its Slack hook (a credential) wait sealed, as
a subscriber's do, and the key that finds a sign-up by its target names a Slack hook by
its digest (``SubscriberRepo.indexed_target``). It is not a subscriber yet, so no fanout
ever sees it. Confirming (the emailed link, an SMS ``YES``, a webhook that echoed its
challenge) adds it to the page's subscribers, re-enabling one that had opted out
(confirming is the person's own explicit act), and writes an audit entry naming how it
was confirmed.

The confirmation itself is sent by a worker (the API never sends): :meth:`OptIn.start`
enqueues it through ``send_confirmation``.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from notifyd.selfservice.pages import PageConfigRepo
from notifyd.selfservice.prefs import PrefsRepo
from notifyd.state import audit
from notifyd.state.keys import Keys
from notifyd.state.sealing import is_sealed
from notifyd.state.subscribers import StoredSubscriber, SubscriberError, SubscriberRepo, seals_target

#: A second sign-up of a target waiting for confirmation re-sends it at most this often.
RESEND_AFTER_S = 60
#: Replies that confirm an SMS sign-up (case-insensitive), in the shipped languages.
SMS_YES = frozenset({"yes", "y", "ja", "oui", "si", "sí", "はい"})


class NotPending(LookupError):
    """The sign-up is unknown: never made, already confirmed, or expired."""


@dataclass(frozen=True, slots=True)
class Pending:
    id: str
    page_id: str
    #: The subscriber fields (channel, target, components, secret) as the repository takes them.
    subscriber: dict[str, Any]
    prefs: dict[str, Any]
    source: str
    created: float
    sent_at: float

    def __repr__(self) -> str:  # the subscriber may carry a webhook secret
        return f"Pending(id={self.id!r}, page_id={self.page_id!r}, channel={self.channel!r})"

    @property
    def channel(self) -> str:
        return str(self.subscriber["channel"])

    @property
    def target(self) -> str:
        return str(self.subscriber["target"])

    def encode(self) -> str:
        return json.dumps(
            {
                "page": self.page_id,
                "sub": self.subscriber,
                "prefs": self.prefs,
                "src": self.source,
                "at": self.created,
                "sent": self.sent_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, pending_id: str, raw: bytes | str) -> Pending:
        d = json.loads(raw)
        return cls(pending_id, d["page"], d["sub"], d.get("prefs", {}), d["src"], d["at"], d["sent"])


@dataclass(frozen=True, slots=True)
class Started:
    pending_id: str
    #: Whether a confirmation message was enqueued (a repeat within RESEND_AFTER_S is not re-sent).
    sent: bool


class OptIn:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        subscribers: SubscriberRepo,
        *,
        ttl_s: int,
        send_confirmation: Callable[[str], None],
    ) -> None:
        self.client = client
        self.keys = keys
        self.subscribers = subscribers
        self.ttl_s = ttl_s
        self.send_confirmation = send_confirmation
        self.pages = PageConfigRepo(client, keys)
        self.prefs = PrefsRepo(client, keys)

    def record(self, page_id: str, action: str, *, actor: str = "subscriber", **details: str | None) -> None:
        """An entry in the page's audit trail (notifyd/state/audit.py); never a secret in it."""
        audit.record(
            self.client,
            self.keys,
            page_id,
            action,
            actor=actor,
            **{k: v for k, v in details.items() if v is not None},
        )

    # -- sign-up ------------------------------------------------------------------------

    def start(
        self, page_id: str, subscriber: dict[str, Any], prefs: dict[str, Any] | None = None, *, source: str
    ) -> Started:
        """Record a pending sign-up (validated already) and enqueue its confirmation."""
        channel, target = subscriber["channel"], subscriber["target"]
        index = self._index(page_id, channel, target)
        now = time.time()
        existing_id = self.client.get(index)
        if existing_id is not None:
            pending = self.get(existing_id.decode())
            if pending is not None:
                refreshed = Pending(
                    pending.id,
                    page_id,
                    subscriber,
                    prefs or {},
                    source,
                    pending.created,
                    now if now - pending.sent_at >= RESEND_AFTER_S else pending.sent_at,
                )
                self._write(refreshed, index)
                resend = refreshed.sent_at == now
                if resend:
                    self.send_confirmation(pending.id)
                return Started(pending.id, resend)
        pending = Pending(secrets.token_urlsafe(18), page_id, subscriber, prefs or {}, source, now, now)
        self._write(pending, index)
        self.record(page_id, "signup_pending", channel=channel, via=source, pending=pending.id)
        self.send_confirmation(pending.id)
        return Started(pending.id, True)

    def _index(self, page_id: str, channel: str, target: str) -> str:
        return self.keys.pending_target(page_id, channel, self.subscribers.indexed_target(channel, target))

    def _context(self, pending_id: str, page_id: str, subscriber: dict[str, Any]) -> str:
        """The secret's context: the sign-up, its page, channel and target (in clear)."""
        return f"pending\x1f{pending_id}\x1f{page_id}\x1f{subscriber['channel']}\x1f{subscriber['target']}"

    def _target_context(self, pending_id: str, page_id: str, channel: str) -> str:
        return f"pending-target\x1f{pending_id}\x1f{page_id}\x1f{channel}"

    def _sealed(self, pending: Pending) -> Pending:
        """The sign-up as stored: its secret and a Slack hook sealed with the newest key."""
        keyring = self.subscribers.keyring
        sub = dict(pending.subscriber)
        secret = sub.get("secret")
        if secret:
            sub["secret"] = keyring.seal(str(secret), self._context(pending.id, pending.page_id, sub))
        if seals_target(pending.channel, pending.target):
            context = self._target_context(pending.id, pending.page_id, pending.channel)
            sub["target"] = keyring.seal(pending.target, context)
        return dataclasses.replace(pending, subscriber=sub)

    def _opened(self, stored: Pending) -> Pending:
        """The sign-up in clear (a legacy clear value as it is); SealError when a value does not open."""
        keyring = self.subscribers.keyring
        sub = dict(stored.subscriber)
        if stored.channel == "slack" and is_sealed(stored.target):
            sub["target"] = keyring.open(
                stored.target, self._target_context(stored.id, stored.page_id, stored.channel)
            )
        secret = sub.get("secret")
        if secret:
            sub["secret"] = keyring.open(str(secret), self._context(stored.id, stored.page_id, sub))
        return dataclasses.replace(stored, subscriber=sub)

    def _write(self, pending: Pending, index: str) -> None:
        stored = self._sealed(pending)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.pending(pending.id), stored.encode(), ex=self.ttl_s)
        pipe.set(index, pending.id, ex=self.ttl_s)
        if pending.channel == "sms":
            phone = self.keys.pending_by_phone(pending.target)
            pipe.lrem(phone, 0, pending.id)
            pipe.lpush(phone, pending.id)
            pipe.expire(phone, self.ttl_s)
        pipe.execute()

    def get(self, pending_id: str) -> Pending | None:
        raw = self.client.get(self.keys.pending(pending_id))
        if raw is None:
            return None
        return self._opened(Pending.decode(pending_id, raw))

    def rewrap(self) -> int:
        """Re-seal the secrets and Slack hooks of sign-ups still waiting with the newest key (a key
        rotation; a legacy clear hook sealed, and its index key renamed to its digest); returns
        how many. Each record keeps its TTL; one confirmed meanwhile is left alone."""
        keyring = self.subscribers.keyring
        prefix = self.keys.pending("")
        done = 0
        for name in self.client.scan_iter(match=self.keys.pending("*"), count=1000):
            key = name.decode()
            resealed: list[bool] = []

            def write(pipe: Any, key: str = key, resealed: list[bool] = resealed) -> None:
                raw = pipe.get(key)
                if raw is None:
                    return
                stored = Pending.decode(key.removeprefix(prefix), raw)
                secret = stored.subscriber.get("secret")
                hook = seals_target(stored.channel, stored.target) or is_sealed(stored.target)
                if (not secret or keyring.is_current(str(secret))) and (
                    not hook or keyring.is_current(stored.target)
                ):
                    return
                opened = self._opened(stored)
                # A hook's sign-up was found by its URL before hooks were sealed: renamed to its digest.
                legacy = self.keys.pending_target(stored.page_id, stored.channel, stored.target)
                renamed = hook and not is_sealed(stored.target) and pipe.exists(legacy)
                pipe.multi()
                pipe.set(key, self._sealed(opened).encode(), keepttl=True)
                if renamed:
                    pipe.rename(legacy, self._index(stored.page_id, stored.channel, stored.target))
                resealed[:] = [True]

            self.client.transaction(write, key)
            done += bool(resealed)
        return done

    # -- confirmation ---------------------------------------------------------------------

    def confirm(self, pending_id: str, *, via: str) -> StoredSubscriber:
        """Turn a pending sign-up into an active subscriber. Raises NotPending when it is gone."""
        pending = self.get(pending_id)
        if pending is None:
            raise NotPending("this sign-up is unknown or has expired; subscribe again")
        # Only one confirmation wins (a double click, a YES and a link): the one that deletes it.
        if not self.client.delete(self.keys.pending(pending_id)):
            raise NotPending("this sign-up was already confirmed")
        self.client.delete(self._index(pending.page_id, pending.channel, pending.target))
        sub = self.activate(pending.page_id, pending.subscriber, pending.prefs)
        self.record(
            pending.page_id, "confirmed", subscriber=sub.id, channel=sub.channel, via=via, pending=pending_id
        )
        return sub

    def activate(self, page_id: str, subscriber: dict[str, Any], prefs: dict[str, Any]) -> StoredSubscriber:
        try:
            result = self.subscribers.add(page_id, subscriber)
        except SubscriberError:
            # The target is subscribed under another id; confirming it again re-enables that one.
            raise
        sub = result.subscriber
        if prefs.get("incident") and not result.created and not sub.disabled:
            current = self.prefs.get(page_id, sub.id)
            if current.incident is None:
                # Subscribed to the whole page already: following one incident adds nothing.
                prefs = {k: v for k, v in prefs.items() if k != "incident"}
        if sub.disabled:
            # Opted out before: this confirmation is the person's own explicit act to come back.
            sub = (
                self.subscribers.reactivate(page_id, sub.id, force=True, actor="subscriber:confirmed") or sub
            )
        if prefs:
            self.prefs.update(page_id, sub.id, prefs)
        return sub

    def confirm_sms_reply(self, phone: str, body: str) -> list[StoredSubscriber]:
        """An inbound SMS: ``YES`` confirms every sign-up of that number still waiting."""
        if body.strip().strip(".!").casefold() not in SMS_YES:
            return []
        key = self.keys.pending_by_phone(phone)
        confirmed = []
        for raw in self.client.lrange(key, 0, -1):
            try:
                confirmed.append(self.confirm(raw.decode(), via="sms-reply"))
            except NotPending:
                continue
        self.client.delete(key)
        return confirmed
