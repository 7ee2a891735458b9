"""Subscribers in Redis, indexed per page so 1M can be walked in order.

Each page numbers its subscribers with a sequence (``seq``). Records live in
bucket hashes of :data:`~notifyd.state.keys.BUCKET` entries keyed by seq, so a
fanout shard reads a seq range with a few ``HGETALL`` calls and never loads
the whole page. ``(channel, target)`` maps to its seq, which makes adding the
same target twice an update. A removed subscriber keeps a small tombstone
(id and channel) so past deliveries can still name it.

A Slack incoming-webhook URL is a credential: whoever holds it can post to that channel.
It is stored sealed (notifyd/state/sealing.py), with its keyed digest
(notifyd/state/target_digests.py) beside it in the record (``tk``), and the targets index
names it by that digest, so Redis never holds the URL in clear. Other targets stay in
clear: an email address or a phone number is personal data, not a secret, which operators
look up and which the preference pages show; a webhook is authenticated by its signing
secret (sealed), not by its URL. :meth:`SubscriberRepo.target_of` gives any target in clear.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import redis
from pydantic import ValidationError

from notifyd.ids import new_subscriber_id
from notifyd.models import Subscriber, SubscriberLine, generate_webhook_secret, quick_line
from notifyd.preferences import NO_PREFERENCES, Preferences
from notifyd.state import audit
from notifyd.state.keys import BUCKET, Keys, bucket_of
from notifyd.state.scripts import register
from notifyd.state.sealing import Keyring, SealError, is_sealed, target_context, webhook_secret_context
from notifyd.state.subscriber_errors import PageFull, SubscriberError, TargetRefused
from notifyd.state.target_digests import TargetDigests
from notifyd.state.target_hosts import HostCheck, Resolver, endpoint_of, host_of

log = logging.getLogger(__name__)

#: How many subscribers one import round trip writes.
IMPORT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class StoredSubscriber:
    page_id: str
    seq: int
    id: str
    channel: str
    #: The target as stored: a Slack incoming-webhook URL sealed (see :func:`seals_target`),
    #: any other target in clear. :meth:`SubscriberRepo.target_of` opens it.
    stored_target: str
    #: The webhook secret as stored: sealed (notifyd/state/sealing.py), or legacy clear text.
    #: :meth:`SubscriberRepo.secret_of` opens it.
    sealed_secret: str | None
    components: frozenset[str] | None
    contact_email: str | None
    disabled: str | None = None
    removed: bool = False
    prefs: Preferences = NO_PREFERENCES
    #: The keyed digest of a sealed target (record field ``tk``): what the targets index and the
    #: Slack send schedule name it by. None for a target kept in clear.
    target_digest: str | None = None

    def __repr__(self) -> str:  # never show the secret
        return (
            f"StoredSubscriber(page_id={self.page_id!r}, seq={self.seq}, id={self.id!r}, "
            f"channel={self.channel!r}, disabled={self.disabled!r}, removed={self.removed})"
        )

    def wants(self, components: set[str]) -> bool:
        """An event reaches this subscriber unless a component filter excludes it."""
        if self.components is None:
            return True
        return bool(self.components & components)

    def public(self, shown_target: str) -> dict[str, Any]:
        """The subscriber as the API and the CLI show it, its target shown as given
        (:meth:`SubscriberRepo.public` masks a Slack hook)."""
        data: dict[str, Any] = {"id": self.id, "page_id": self.page_id, "channel": self.channel}
        if not self.removed:
            data["target"] = shown_target
        if self.components is not None:
            data["components"] = sorted(self.components)
        if self.contact_email:
            data["contact_email"] = self.contact_email
        data.update(self.prefs.public())
        data["status"] = "removed" if self.removed else ("disabled" if self.disabled else "active")
        if self.disabled:
            data["disabled_reason"] = self.disabled
        return data

    def encode(self) -> str:
        record: dict[str, Any] = {"id": self.id, "ch": self.channel}
        if not self.removed:
            record["t"] = self.stored_target
            if self.target_digest:
                record["tk"] = self.target_digest
            if self.sealed_secret:
                record["sec"] = self.sealed_secret
            if self.components is not None:
                record["comp"] = sorted(self.components)
            if self.contact_email:
                record["ce"] = self.contact_email
            if self.disabled:
                record["dis"] = self.disabled
            record.update(self.prefs.encode())
        else:
            record["rm"] = 1
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def decode(cls, page_id: str, seq: int, raw: bytes | str) -> StoredSubscriber:
        record = json.loads(raw)
        comp = record.get("comp")
        return cls(
            page_id=page_id,
            seq=seq,
            id=record["id"],
            channel=record["ch"],
            stored_target=record.get("t", ""),
            sealed_secret=record.get("sec"),
            components=frozenset(comp) if comp is not None else None,
            contact_email=record.get("ce"),
            disabled=record.get("dis"),
            removed=bool(record.get("rm")),
            prefs=Preferences.decode(record),
            target_digest=record.get("tk"),
        )


#: Reasons that mean the person (or their provider, for them) said stop: an SMS STOP
#: arrives as ``unsubscribed``, a webhook's 410 Gone as ``endpoint_gone``. Such a
#: subscriber is never re-enabled by an add or an import; only ``reactivate(force=True)``.
#: The same list is in ``lua/subscribers_upsert.lua``.
OPT_OUT_REASONS = frozenset({"unsubscribed", "endpoint_gone"})

#: What an add or an import line did.
CREATED, UPDATED, KEPT_UNSUBSCRIBED = "created", "updated", "kept_unsubscribed"
#: The import summary's counter for each outcome (CLI and API print the same summary).
COUNTED = {CREATED: "imported", UPDATED: "updated", KEPT_UNSUBSCRIBED: "kept_unsubscribed"}


class AddResult:
    """What an add or an import line did.

    An import makes a million of these and most are only counted, so an import line's
    ``subscriber`` (ids and target only: records are not read back) is built when first asked.
    """

    __slots__ = ("_line", "_subscriber", "created", "generated_secret", "outcome", "warnings")

    def __init__(
        self,
        subscriber: StoredSubscriber | None,
        created: bool,
        generated_secret: str | None = None,
        outcome: str = UPDATED,
        warnings: tuple[str, ...] = (),
        *,
        line: tuple[str, int, str, SubscriberLine] | None = None,
    ) -> None:
        self._subscriber = subscriber
        #: (page, seq, id, line): what builds ``subscriber`` when it was not given.
        self._line = line
        self.created = created
        #: The webhook secret, returned once when notifyd generated it.
        self.generated_secret = generated_secret
        #: ``created``, ``updated`` or ``kept_unsubscribed`` (an opted-out subscriber left as it was).
        self.outcome = outcome
        #: Accepted, but worth saying: a host name that did not resolve.
        self.warnings = warnings

    @property
    def subscriber(self) -> StoredSubscriber:
        if self._subscriber is None:
            assert self._line is not None
            self._subscriber = _from_line(*self._line)
        return self._subscriber

    @property
    def kept(self) -> bool:
        return self.outcome == KEPT_UNSUBSCRIBED

    def __repr__(self) -> str:  # never show a generated secret
        return f"AddResult(outcome={self.outcome!r}, subscriber={self.subscriber!r})"


class ConsentError(SubscriberError):
    """Reactivating a subscriber who opted out, without saying that this overrides them."""


#: A row to import: (line number, the subscriber's fields, or why the line could not be read).
Row = tuple[int, "dict[str, Any] | Subscriber | SubscriberLine | Exception"]


def seals_target(channel: str, target: str) -> bool:
    """Whether a target is stored sealed: a Slack incoming-webhook URL, which is a credential
    (a ``slack:<channel id>`` target is not: the bot token is). See the module's docstring."""
    return channel == "slack" and "://" in target


def mask_target(channel: str, target: str) -> str:
    """A target as shown back: a sealed kind by its scheme, host and last four characters
    (``https://hooks.slack.com/...Xy12``), enough to tell two hooks apart; others as they are."""
    if not seals_target(channel, target):
        return target
    scheme, _, rest = target.partition("://")
    return f"{scheme}://{rest.partition('/')[0]}/...{target[-4:]}"


def _target_key(channel: str, indexed: str) -> str:
    """A targets index field: the channel and the target, or a sealed target's digest."""
    return f"{channel}\x1f{indexed}"


def _indexed(sub: StoredSubscriber) -> str:
    """What the targets index names a stored subscriber by."""
    return sub.target_digest or sub.stored_target


def _rest(sub: SubscriberLine, target: str, digest: str | None) -> str:
    """The record's fields other than id, secret and disabled state, as upsert.lua takes them;
    ``target`` as stored (sealed, with its ``digest``, or clear)."""
    prefs = sub.prefs
    if sub.components is None and not sub.contact_email and prefs is NO_PREFERENCES:
        # The common line, without building a dict: json's C string encoder does the escaping.
        if digest is None:
            return f'{{"ch":"{sub.channel}","t":{_string(target)}}}'
        return f'{{"ch":"{sub.channel}","t":{_string(target)},"tk":{_string(digest)}}}'
    record: dict[str, Any] = {"ch": sub.channel, "t": target}
    if digest is not None:
        record["tk"] = digest
    if sub.components is not None:
        record["comp"] = sorted(set(sub.components))
    if sub.contact_email:
        record["ce"] = sub.contact_email
    record.update(prefs.encode())
    return _compact(record)


_string = json.encoder.encode_basestring_ascii

#: The record fields an add or import line sets (see _rest and Preferences.encode); an update
#: replaces these and carries any other field of the record over.
LINE_FIELDS = "ch,t,tk,comp,ce,et,mi,ph,qh"


#: json.dumps with separators builds a new encoder per call; an import encodes a million.
_compact = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(slots=True)
class _Batch:
    """One batch on its way through upsert.lua: what is known before and after the call."""

    lines: list[int]
    records: bool
    #: Results known without Redis (unreadable or invalid lines), by index in the batch.
    results: dict[int, AddResult | SubscriberError] = dataclasses.field(default_factory=dict)
    #: (index, subscriber, generated secret, warnings) of each line sent, in blob order.
    sent: list[tuple[int, SubscriberLine, str | None, tuple[str, ...]]] = dataclasses.field(
        default_factory=list
    )
    #: The lines as upsert.lua's ARGV[6] takes them (MessagePack).
    blob: bytes = b""


class SubscriberRepo:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        allow_private_targets: bool = False,
        page_max_subscribers: int = 0,
        resolver: Resolver | None = None,
        dns_timeout_s: float = 1.0,
        keyring: Keyring,
        digests: TargetDigests,
    ) -> None:
        self.client = client
        self.keys = keys
        #: Seals webhook secrets and Slack hooks before they are written, and opens them for sending.
        self.keyring = keyring
        #: Names a sealed target in the targets index (and the Slack send schedule).
        self.digests = digests
        self.allow_private_targets = allow_private_targets
        #: Subscribe-time DNS (tests inject a resolver through ``hosts.resolver``).
        self.hosts = HostCheck(
            allow_private=allow_private_targets, resolver=resolver, timeout_s=dns_timeout_s
        )
        #: 0: no cap.
        self.page_max_subscribers = page_max_subscribers
        self._upsert = register(client, "subscribers_upsert")

    # -- validation -----------------------------------------------------------------

    def validate(self, data: dict[str, Any] | Subscriber | SubscriberLine) -> SubscriberLine:
        """The line as the write path takes it; :class:`SubscriberError` with the model's words
        when :class:`Subscriber` refuses it. Common lines skip pydantic (see ``quick_line``)."""
        if type(data) is dict:
            quick = quick_line(data, allow_private=self.allow_private_targets)
            if quick is not None:
                return quick
        if isinstance(data, SubscriberLine):
            return data
        if isinstance(data, Subscriber):
            return line_of(data)
        try:
            sub = Subscriber.model_validate(data, context={"allow_private": self.allow_private_targets})
        except ValidationError as exc:
            raise SubscriberError(describe_validation_error(exc)) from None
        return line_of(sub)

    # -- writes ---------------------------------------------------------------------

    def add(self, page_id: str, data: dict[str, Any] | Subscriber) -> AddResult:
        """Add a subscriber, or update the one with the same (channel, target).

        An opted-out subscriber is left as it is (``outcome == "kept_unsubscribed"``); a
        quarantined or invalid-target one is updated but stays disabled until reactivated.
        """
        sub = self.validate(data)
        prepared = self._prepare(page_id, [(0, sub)], records=True)
        ((_, result),) = self._finish(page_id, prepared, self._call(page_id, prepared))
        if isinstance(result, SubscriberError):
            raise result
        return result

    def import_many(
        self, page_id: str, rows: Iterable[Row]
    ) -> Iterator[tuple[int, AddResult | SubscriberError]]:
        """Add many subscribers, streaming; yields (line, result or error) per row, in order.

        Every line, with or without id, secret or components, is written :data:`IMPORT_BATCH`
        at a time by one script call; an import result's ``subscriber`` carries only what the
        line gave (records are not read back).
        """
        # While Redis runs one batch's script (on a thread, waiting on the socket), the next
        # batch is parsed and validated here: the two costs overlap instead of adding up.
        stopped: list[SubscriberError] = []

        def source() -> Iterator[Row]:
            # A source that stops with a refusal (an import over its cap) still has the rows
            # read so far written and reported, then the refusal is raised.
            try:
                yield from rows
            except SubscriberError as exc:
                stopped.append(exc)

        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="notifyd-import") as sender:
            pending: tuple[_Batch, concurrent.futures.Future[bytes | None]] | None = None
            batch: list[Row] = []
            for row in itertools.chain(source(), [None]):
                if row is not None:
                    batch.append(row)
                    if len(batch) < IMPORT_BATCH:
                        continue
                elif not batch:
                    break
                prepared = self._prepare(page_id, batch, records=False)
                sent = sender.submit(self._call, page_id, prepared)
                batch = []
                if pending is not None:
                    yield from self._finish(page_id, pending[0], pending[1].result())
                pending = (prepared, sent)
            if pending is not None:
                yield from self._finish(page_id, pending[0], pending[1].result())
        if stopped:
            raise stopped[0]

    def _prepare(self, page_id: str, batch: list[Row], *, records: bool) -> _Batch:
        """Validate and vet a batch's rows, and encode the valid ones as upsert.lua takes them."""
        prepared = _Batch(lines=[line for line, _ in batch], records=records)
        checked: list[tuple[int, SubscriberLine]] = []
        for i, (_, row) in enumerate(batch):
            if isinstance(row, Exception):
                prepared.results[i] = SubscriberError(str(row))
                continue
            try:
                checked.append((i, self.validate(row)))
            except SubscriberError as exc:
                prepared.results[i] = exc
        hosts = {} if self.allow_private_targets else {i: sub.host or host_of(sub) for i, sub in checked}
        self.hosts.prefetch(h for h in hosts.values() if h)
        fields: list[str] = []  # seven per line, as upsert.lua's ARGV[6] takes them
        for i, sub in checked:
            try:
                warned = self.hosts.vet(sub, hosts.get(i))
            except SubscriberError as exc:
                prepared.results[i] = exc
                continue
            given = sub.secret or ""
            gen = generate_webhook_secret() if sub.channel == "webhook" and not given else ""
            made_id = "" if sub.id else new_subscriber_id()
            # Sealed here, before the script: Redis (and its AOF, replicas, SLOWLOG) never sees
            # a secret in clear. The context binds each one to this page, channel and target.
            if given or gen:
                context = webhook_secret_context(page_id, sub.channel, sub.target)
                sealed_given = self.keyring.seal(given, context) if given else ""
                sealed_gen = self.keyring.seal(gen, context) if gen else ""
            else:
                sealed_given = sealed_gen = ""
            # The same hook given twice has the same digest: one subscriber, as for any target.
            target, indexed, digest = sub.target, sub.target, None
            if seals_target(sub.channel, sub.target):
                indexed = digest = self.indexed_target(sub.channel, sub.target)
                target = self.keyring.seal(sub.target, target_context(page_id, sub.channel, digest))
            fields += (
                sub.channel,
                indexed,
                sub.id or "",
                made_id,
                sealed_given,
                sealed_gen,
                _rest(sub, target, digest),
            )
            prepared.sent.append((i, sub, gen or None, warned))
        prepared.blob = msgpack.packb(fields)
        return prepared

    def _call(self, page_id: str, prepared: _Batch) -> bytes | None:
        """One script call for the whole batch (none when no line is valid)."""
        if not prepared.sent:
            return None
        keys = [
            self.keys.subscriber_targets(page_id),
            self.keys.subscriber_ids(page_id),
            self.keys.page_seq(page_id),
            self.keys.pages(),
        ]
        args = [
            self.keys.subscriber_buckets(page_id),
            BUCKET,
            self.page_max_subscribers,
            page_id,
            "1" if prepared.records else "",
            prepared.blob,
            LINE_FIELDS,
        ]
        answer: bytes = self._upsert(keys=keys, args=args)
        return answer

    def _finish(
        self, page_id: str, prepared: _Batch, answer: bytes | None
    ) -> list[tuple[int, AddResult | SubscriberError]]:
        results = prepared.results
        answers = answer.decode().split("\n") if answer is not None else []
        for (i, sub, made, warned), line in zip(prepared.sent, answers, strict=False):
            code, seq, detail, *record = line.split("\x1e")
            if code in (CREATED, UPDATED, KEPT_UNSUBSCRIBED):
                created = code == CREATED
                if prepared.records:
                    stored = StoredSubscriber.decode(page_id, int(seq), record[0])
                    results[i] = AddResult(stored, created, made if created else None, code, warned)
                else:
                    given = (page_id, int(seq), detail if code != KEPT_UNSUBSCRIBED else "", sub)
                    results[i] = AddResult(None, created, made if created else None, code, warned, line=given)
            elif code == "target_taken":
                results[i] = SubscriberError(
                    f"target is already subscribed as {detail!r}; the same (page, channel, target) "
                    "is the same subscriber"
                )
            elif code == "id_taken":
                results[i] = SubscriberError(f"subscriber id {detail!r} is already used by another target")
            else:  # page_full
                results[i] = PageFull(
                    f"page {page_id!r} already has {detail} subscribers, its cap "
                    "(NOTIFYD_PAGE_MAX_SUBSCRIBERS); remove some or raise the cap"
                )
        return [(line, results[i]) for i, line in enumerate(prepared.lines)]

    def remove(self, page_id: str, sub_id: str) -> bool:
        current = self.get(page_id, sub_id)
        if current is None or current.removed:
            return False
        tomb = StoredSubscriber(
            page_id=page_id,
            seq=current.seq,
            id=current.id,
            channel=current.channel,
            stored_target="",
            sealed_secret=None,
            components=None,
            contact_email=None,
            removed=True,
        )
        targets = self.keys.subscriber_targets(page_id)
        # The index entry that names this record, and for a Slack hook the other form of it (the
        # clear URL of a record sealed since, or the digest): each only while it names this seq.
        named = [_target_key(current.channel, _indexed(current))]
        if current.target_digest:
            with contextlib.suppress(SealError):
                named.append(_target_key(current.channel, self.target_of(current)))
        elif seals_target(current.channel, current.stored_target):
            named.append(
                _target_key(current.channel, self.digests.digest(current.channel, current.stored_target))
            )

        def write(pipe: Any) -> None:
            ours = [
                f
                for f, seq in zip(named, pipe.hmget(targets, named), strict=True)
                if seq == str(current.seq).encode()
            ]
            pipe.multi()
            pipe.hset(self.keys.subscribers(page_id, bucket_of(current.seq)), str(current.seq), tomb.encode())
            if ours:
                pipe.hdel(targets, *ours)
            pipe.hdel(self.keys.subscriber_ids(page_id), sub_id)

        self.client.transaction(write, targets)
        return True

    def disable(self, page_id: str, seq: int, reason: str) -> None:
        """Disable a subscriber. The first reason stays, except that an opt-out replaces any
        other (a quarantined endpoint whose owner then unsubscribes has opted out)."""
        key = self.keys.subscribers(page_id, bucket_of(seq))

        def write(pipe: Any) -> None:
            raw = pipe.hget(key, str(seq))
            current = StoredSubscriber.decode(page_id, seq, raw) if raw is not None else None
            if current is None or current.removed or current.disabled == reason:
                return
            if current.disabled and (current.disabled in OPT_OUT_REASONS or reason not in OPT_OUT_REASONS):
                return
            pipe.multi()
            updated = self.resealed(StoredSubscriber(**{**_fields(current), "disabled": reason}))
            pipe.hset(key, str(seq), updated.encode())

        self.client.transaction(write, key)

    def update_choices(
        self, page_id: str, sub_id: str, *, components: Iterable[str] | None, prefs: Preferences
    ) -> StoredSubscriber | None:
        """Change only what the person chooses on the preference page (components and delivery
        preferences), never the target, secret or state; None when unknown."""
        seq = self.seq_of(page_id, sub_id)
        if seq is None:
            return None
        key = self.keys.subscribers(page_id, bucket_of(seq))
        chosen = frozenset(components) if components is not None else None
        done: list[StoredSubscriber] = []

        def write(pipe: Any) -> None:
            raw = pipe.hget(key, str(seq))
            current = StoredSubscriber.decode(page_id, seq, raw) if raw is not None else None
            if current is None or current.removed:
                return
            updated = self.resealed(
                StoredSubscriber(**{**_fields(current), "components": chosen, "prefs": prefs})
            )
            pipe.multi()
            pipe.hset(key, str(seq), updated.encode())
            done[:] = [updated]

        self.client.transaction(write, key)
        return done[0] if done else None

    def reactivate(
        self, page_id: str, sub_id: str, *, force: bool = False, actor: str = "unknown"
    ) -> StoredSubscriber | None:
        """Clear a disabled subscriber; None when the page has no such subscriber.

        Quarantine and invalid-target states are cleared as asked. An opt-out
        (:data:`OPT_OUT_REASONS`) is the person's own choice: clearing it needs ``force``
        (else :class:`ConsentError`), and is written to the page's audit trail with the actor.
        """
        current = self.get(page_id, sub_id)
        if current is None or current.removed:
            return None
        if not current.disabled:
            return current
        if current.disabled in OPT_OUT_REASONS and not force:
            raise ConsentError(
                f"subscriber {sub_id!r} opted out ({current.disabled}); only a forced reactivation "
                "(--force, or force=true) overrides that, and it is recorded in the audit trail"
            )
        cleared = self.resealed(StoredSubscriber(**{**_fields(current), "disabled": None}))
        key = self.keys.subscribers(page_id, bucket_of(current.seq))
        self.client.hset(key, str(current.seq), cleared.encode())
        audit.record(
            self.client,
            self.keys,
            page_id,
            "reactivate",
            actor=actor,
            subscriber_id=sub_id,
            cleared=current.disabled,
            forced=force,
        )
        return cleared

    # -- secrets --------------------------------------------------------------------

    def indexed_target(self, channel: str, target: str) -> str:
        """What an index names a target by: a Slack hook by its keyed digest, others as they are."""
        return self.digests.digest(channel, target) if seals_target(channel, target) else target

    def target_of(self, sub: StoredSubscriber) -> str:
        """The subscriber's target in clear (a sealed Slack hook opened), for sending; raises
        SealError when the key that sealed it is not configured, or the sealed value was moved
        from another record (the message names the key id, never the target)."""
        if sub.target_digest is None or not is_sealed(sub.stored_target):
            return sub.stored_target
        return self.keyring.open(
            sub.stored_target, target_context(sub.page_id, sub.channel, sub.target_digest)
        )

    def secret_of(self, sub: StoredSubscriber) -> str | None:
        """The subscriber's webhook secret in clear, for signing; raises SealError when the key
        that sealed it is not configured (the message names its key id, never the secret)."""
        if not sub.sealed_secret:
            return None
        context = webhook_secret_context(sub.page_id, sub.channel, self.target_of(sub))
        return self.keyring.open(sub.sealed_secret, context)

    def shown_target(self, sub: StoredSubscriber) -> str:
        """The target as the API, the CLI and the preference page show it: a Slack hook masked
        (:func:`mask_target`); one that does not open says so instead of failing a listing."""
        try:
            return mask_target(sub.channel, self.target_of(sub))
        except SealError:
            return "(sealed with a key that is not configured)"

    def public(self, sub: StoredSubscriber) -> dict[str, Any]:
        """The subscriber as the API and the CLI show it (:meth:`StoredSubscriber.public`)."""
        return sub.public("" if sub.removed else self.shown_target(sub))

    def endpoint(self, sub: StoredSubscriber) -> str:
        """Where the subscriber's endpoint lives, without its path (see ``endpoint_of``)."""
        try:
            return endpoint_of(sub.channel, self.target_of(sub))
        except SealError:
            return sub.channel

    def resealed(self, sub: StoredSubscriber) -> StoredSubscriber:
        """The record with its secret and sealed target sealed with the newest key (a legacy
        clear secret sealed): every write of a record re-seals it. A legacy clear Slack hook
        is left to :meth:`rewrap` and the start-up migration, which re-index it as well."""
        again = sub
        if sub.sealed_secret and not self.keyring.is_current(sub.sealed_secret):
            context = webhook_secret_context(sub.page_id, sub.channel, self.target_of(sub))
            again = dataclasses.replace(again, sealed_secret=self.keyring.reseal(sub.sealed_secret, context))
        if sub.target_digest and not self.keyring.is_current(sub.stored_target):
            context = target_context(sub.page_id, sub.channel, sub.target_digest)
            again = dataclasses.replace(again, stored_target=self.keyring.seal(self.target_of(sub), context))
        return again

    def _sealed_legacy(self, sub: StoredSubscriber) -> StoredSubscriber:
        """The record with what an older notifyd kept in clear sealed: a webhook secret (which a
        batched update without a secret carried over as it was), a Slack hook and its digest.
        Opens nothing: a value sealed already is left as it is."""
        again = sub
        if sub.sealed_secret and not is_sealed(sub.sealed_secret):
            context = webhook_secret_context(sub.page_id, sub.channel, self.target_of(sub))
            again = dataclasses.replace(again, sealed_secret=self.keyring.seal(sub.sealed_secret, context))
        if not sub.removed and sub.target_digest is None and seals_target(sub.channel, sub.stored_target):
            digest = self.digests.digest(sub.channel, sub.stored_target)
            sealed = self.keyring.seal(sub.stored_target, target_context(sub.page_id, sub.channel, digest))
            again = dataclasses.replace(again, stored_target=sealed, target_digest=digest)
        return again

    def rewrap(self, page_id: str) -> int:
        """Re-seal every secret and Slack hook of the page that is not sealed with the newest key
        (legacy clear ones included, a hook re-indexed by its digest); returns how many records
        were rewritten."""
        return self._reseal_page(page_id, lambda sub: self.resealed(self._sealed_legacy(sub)))

    def seal_legacy(self) -> int:
        """The one-time start-up migration: seal what an older notifyd kept in clear on every
        page (:meth:`_sealed_legacy`), and index its Slack hooks by digest. A no-op (one EXISTS)
        once done; returns how many records were rewritten."""
        done = self.keys.migrated("sealed-targets")
        if self.client.exists(done):
            return 0
        rewritten = sum(self._reseal_page(page_id, self._sealed_legacy) for page_id in self.pages())
        self.client.set(done, "1")
        if rewritten:
            log.info("sealed %d subscriber records written in clear by an older notifyd", rewritten)
        return rewritten

    def _reseal_page(self, page_id: str, reseal: Callable[[StoredSubscriber], StoredSubscriber]) -> int:
        """Rewrite each record of the page that ``reseal`` changes; a record whose hook it sealed
        moves from its clear index entry to its digest. Safe while the page is in use: each bucket
        is rewritten in a transaction that retries if the bucket or the index changed meanwhile."""
        targets = self.keys.subscriber_targets(page_id)
        rewritten = 0
        for bucket in range(bucket_of(max(self.max_seq(page_id) - 1, 0)) + 1):
            key = self.keys.subscribers(page_id, bucket)
            done: list[int] = []

            def write(pipe: Any, key: str = key, done: list[int] = done) -> None:
                changed: dict[str, str] = {}
                moved: list[tuple[str, str, int]] = []  # (clear index field, digest field, seq)
                for field, raw in pipe.hgetall(key).items():
                    sub = StoredSubscriber.decode(page_id, int(field), raw)
                    again = reseal(sub)
                    if again is sub:
                        continue
                    changed[field.decode()] = again.encode()
                    if again.target_digest != sub.target_digest:
                        clear, digest = (
                            _target_key(sub.channel, _indexed(sub)),
                            _target_key(sub.channel, _indexed(again)),
                        )
                        moved.append((clear, digest, sub.seq))
                indexed = pipe.hmget(targets, [clear for clear, _, _ in moved]) if moved else []
                done[:] = [len(changed)]
                if changed:
                    pipe.multi()
                    pipe.hset(key, mapping=changed)
                    for (clear, digest, seq), at in zip(moved, indexed, strict=True):
                        if at == str(seq).encode():
                            pipe.hdel(targets, clear)
                        pipe.hset(targets, digest, seq)

            self.client.transaction(write, key, targets)
            rewritten += done[0] if done else 0
        return rewritten

    def pages(self) -> list[str]:
        return sorted(p.decode() for p in self.client.smembers(self.keys.pages()))

    # -- reads ----------------------------------------------------------------------

    def seq_of(self, page_id: str, sub_id: str) -> int | None:
        raw = self.client.hget(self.keys.subscriber_ids(page_id), sub_id)
        return int(raw) if raw is not None else None

    def pages_with(self, sub_id: str) -> list[tuple[str, int]]:
        """Every (page, seq) that has a subscriber with this id: ids are unique per page only."""
        pages = sorted(p.decode() for p in self.client.smembers(self.keys.pages()))
        pipe = self.client.pipeline(transaction=False)
        for page_id in pages:
            pipe.hget(self.keys.subscriber_ids(page_id), sub_id)
        return [(p, int(seq)) for p, seq in zip(pages, pipe.execute(), strict=True) if seq is not None]

    def get(self, page_id: str, sub_id: str) -> StoredSubscriber | None:
        seq = self.seq_of(page_id, sub_id)
        return self.get_seq(page_id, seq) if seq is not None else None

    def get_seq(self, page_id: str, seq: int) -> StoredSubscriber | None:
        raw = self.client.hget(self.keys.subscribers(page_id, bucket_of(seq)), str(seq))
        return StoredSubscriber.decode(page_id, seq, raw) if raw is not None else None

    def max_seq(self, page_id: str) -> int:
        """One past the highest seq ever given on this page."""
        raw = self.client.get(self.keys.page_seq(page_id))
        return int(raw) if raw is not None else 0

    def range(self, page_id: str, start: int, end: int) -> list[StoredSubscriber]:
        """Subscribers (tombstones included) with start <= seq < end, in seq order."""
        if end <= start:
            return []
        pipe = self.client.pipeline(transaction=False)
        buckets = range(bucket_of(start), bucket_of(end - 1) + 1)
        for bucket in buckets:
            pipe.hgetall(self.keys.subscribers(page_id, bucket))
        found: list[StoredSubscriber] = []
        for records in pipe.execute():
            for field, raw in records.items():
                seq = int(field)
                if start <= seq < end:
                    found.append(StoredSubscriber.decode(page_id, seq, raw))
        found.sort(key=lambda s: s.seq)
        return found

    def range_many(self, page_id: str, seqs: Iterable[int]) -> list[StoredSubscriber]:
        """The subscribers with these seqs (missing ones are left out), in seq order."""
        by_bucket: dict[int, list[int]] = {}
        for seq in seqs:
            by_bucket.setdefault(bucket_of(seq), []).append(seq)
        pipe = self.client.pipeline(transaction=False)
        order = sorted(by_bucket.items())
        for bucket, members in order:
            pipe.hmget(self.keys.subscribers(page_id, bucket), [str(s) for s in members])
        found: list[StoredSubscriber] = []
        for (_, members), values in zip(order, pipe.execute(), strict=True):
            found.extend(
                StoredSubscriber.decode(page_id, seq, raw)
                for seq, raw in zip(members, values, strict=True)
                if raw is not None
            )
        found.sort(key=lambda s: s.seq)
        return found

    def page(
        self, page_id: str, *, cursor: int = 0, limit: int = 100
    ) -> tuple[list[StoredSubscriber], int | None]:
        """Live subscribers from ``cursor`` on; returns them and the next cursor (None at the end)."""
        top = self.max_seq(page_id)
        items: list[StoredSubscriber] = []
        start = cursor
        while start < top and len(items) < limit:
            end = min(top, (bucket_of(start) + 1) * BUCKET)
            for sub in self.range(page_id, start, end):
                if sub.removed:
                    continue
                if len(items) == limit:
                    return items, sub.seq
                items.append(sub)
            start = end
        return items, (start if start < top else None)

    def count(self, page_id: str) -> int:
        return int(self.client.hlen(self.keys.subscriber_targets(page_id)))


def line_of(sub: Subscriber) -> SubscriberLine:
    """What the model accepted, as the write path takes it."""
    return SubscriberLine(
        sub.channel,
        sub.target,
        sub.id,
        sub.secret.get_secret_value() if sub.secret is not None else None,
        sub.components,
        sub.contact_email,
        preferences_of(sub),
    )


def preferences_of(sub: Subscriber) -> Preferences:
    if (
        sub.event_types is None
        and sub.min_impact is None
        and sub.incident_phases is None
        and sub.quiet_hours is None
    ):
        return NO_PREFERENCES  # the common line: skip building an empty one
    return Preferences.from_fields(
        event_types=list(sub.event_types) if sub.event_types is not None else None,
        min_impact=sub.min_impact,
        incident_phases=list(sub.incident_phases) if sub.incident_phases is not None else None,
        quiet_hours=sub.quiet_hours.model_dump() if sub.quiet_hours is not None else None,
    )


def _from_line(page_id: str, seq: int, sub_id: str, sub: SubscriberLine) -> StoredSubscriber:
    """What an import line wrote, without reading the record back: ids and target only (no
    secret, state, filters or preferences; an import answers counts, not records). Its target
    is the line's, in clear: this object lives in memory only and is never written."""
    return StoredSubscriber(page_id, seq, sub_id or sub.id or "", sub.channel, sub.target, None, None, None)


def migrate_ids(client: redis.Redis, keys: Keys) -> int:
    """Move ids from the old global index (id -> "page\x1fseq") to each page's own index.

    Idempotent, and a no-op (one EXISTS) once done; returns how many ids moved.
    """
    legacy = keys.legacy_subscriber_ids()
    if not client.exists(legacy):
        return 0
    moved = 0
    for sub_id, raw in client.hscan_iter(legacy, count=1000):
        page_id, _, seq = raw.decode().rpartition("\x1f")
        client.hsetnx(keys.subscriber_ids(page_id), sub_id, seq)
        moved += 1
    client.delete(legacy)
    return moved


def _fields(sub: StoredSubscriber) -> dict[str, Any]:
    return {name: getattr(sub, name) for name in StoredSubscriber.__slots__}


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


__all__ = [
    "COUNTED",
    "OPT_OUT_REASONS",
    "AddResult",
    "ConsentError",
    "PageFull",
    "StoredSubscriber",
    "SubscriberError",
    "SubscriberRepo",
    "TargetRefused",
    "migrate_ids",
]
