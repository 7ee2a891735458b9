"""Double opt-in: a sign-up waits, ``pending``, until its owner confirms it.

A pending sign-up is one JSON record with a TTL (``confirm_ttl_s``): an unconfirmed
one simply expires. It is not a subscriber yet, so no fanout ever sees it. Confirming
(the emailed link, an SMS ``YES``, a webhook that echoed its challenge) adds it to the
page's subscribers, re-enabling one that had opted out (confirming is the person's own
explicit act), and writes an audit entry naming how it was confirmed.

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
from notifyd.state.subscribers import StoredSubscriber, SubscriberError, SubscriberRepo

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
        index = self.keys.pending_target(page_id, channel, target)
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

    def _context(self, pending_id: str, page_id: str, subscriber: dict[str, Any]) -> str:
        return f"pending\x1f{pending_id}\x1f{page_id}\x1f{subscriber['channel']}\x1f{subscriber['target']}"

    def _write(self, pending: Pending, index: str) -> None:
        stored = pending
        secret = pending.subscriber.get("secret")
        if secret:
            # A webhook sign-up's secret waits sealed, as a subscriber's does.
            context = self._context(pending.id, pending.page_id, pending.subscriber)
            sealed = self.subscribers.keyring.seal(str(secret), context)
            stored = dataclasses.replace(pending, subscriber={**pending.subscriber, "secret": sealed})
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
        pending = Pending.decode(pending_id, raw)
        secret = pending.subscriber.get("secret")
        if secret:
            context = self._context(pending.id, pending.page_id, pending.subscriber)
            opened = self.subscribers.keyring.open(str(secret), context)
            pending = dataclasses.replace(pending, subscriber={**pending.subscriber, "secret": opened})
        return pending

    def rewrap(self) -> int:
        """Re-seal the secrets of sign-ups still waiting with the newest key (a key rotation);
        returns how many. Each record keeps its TTL; one confirmed meanwhile is left alone."""
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
                if not secret or keyring.is_current(str(secret)):
                    return
                context = self._context(stored.id, stored.page_id, stored.subscriber)
                sealed = keyring.reseal(str(secret), context)
                again = dataclasses.replace(stored, subscriber={**stored.subscriber, "secret": sealed})
                pipe.multi()
                pipe.set(key, again.encode(), keepttl=True)
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
        self.client.delete(self.keys.pending_target(pending.page_id, pending.channel, pending.target))
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
