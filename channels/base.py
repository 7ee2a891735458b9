"""The one interface every channel adapter implements.

An adapter gets a batch of messages and returns one :class:`Outcome` per
message, in order. It translates its SDK's exceptions into outcomes at the
boundary: nothing from ``aiosmtplib``, ``twilio``, ``slack_sdk`` or ``httpx``
reaches the pipeline. Adapters keep their clients open across batches and
close them in :meth:`Adapter.aclose`.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class OutcomeKind(StrEnum):
    delivered = "delivered"
    transient = "transient"
    permanent = "permanent"


#: Reasons a permanent failure can carry; the pipeline acts on some of them.
PERMANENT_REASONS = ("invalid_target", "unsubscribed", "endpoint_gone", "auth", "rejected", "blocked_target")
#: After these, sending to the subscriber again is pointless: the pipeline disables it.
DISABLING_REASONS = frozenset({"endpoint_gone", "unsubscribed", "invalid_target"})


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    reason: str = ""
    #: Seconds the target asked us to wait (Retry-After), for transient outcomes.
    retry_after: float | None = None

    @classmethod
    def delivered(cls) -> Outcome:
        return cls(OutcomeKind.delivered)

    @classmethod
    def transient(cls, reason: str, retry_after: float | None = None) -> Outcome:
        return cls(OutcomeKind.transient, reason[:200], retry_after)

    @classmethod
    def permanent(cls, reason: str, detail: str = "") -> Outcome:
        text = f"{reason}: {detail}" if detail else reason
        return cls(OutcomeKind.permanent, text[:200])

    @property
    def permanent_reason(self) -> str:
        return self.reason.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Notification:
    """What happened, channel-neutral; built once per event and shared by a whole batch."""

    event_id: str
    event_type: str
    page_id: str
    occurred_at: str
    title: str
    status: str
    impact: str
    message: str
    components: tuple[str, ...]
    #: The webhook body of the contract: type, ids, incident/component, and the page's merged state.
    payload: Mapping[str, Any]
    link: str | None = None
    #: For incidents: the public page that lets a reader follow this one incident.
    follow_url: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """Text a caller rendered already (a page's templates, a language); adapters use it as is.

    A field left ``None`` falls back to the adapter's own rendering of the notification.
    """

    subject: str | None = None
    text: str | None = None
    html: str | None = None
    sms: str | None = None
    #: A whole Slack message body (``text``, ``attachments``/``blocks``).
    slack: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    delivery_id: str
    subscriber_id: str
    target: str
    notification: Notification
    attempt: int = 1
    secret: str | None = field(default=None, repr=False)
    unsubscribe_url: str | None = field(default=None, repr=False)
    #: The subscriber's signed "manage subscription" link (the preference page).
    manage_url: str | None = field(default=None, repr=False)
    rendered: Rendered | None = None
    #: Webhooks only: the 2xx answer's body must contain this string (a confirmation challenge),
    #: or the delivery is a permanent ``rejected``.
    expect_echo: str | None = field(default=None, repr=False)


class _SlotLimit:
    """At most ``per_slot`` holders per key, the others waiting in arrival order (one event loop).

    A key's entry lives only while it is held or waited for, so a million hosts seen once
    leave nothing behind.
    """

    __slots__ = ("per_slot", "_active", "_waiting")

    def __init__(self, per_slot: int) -> None:
        self.per_slot = max(1, per_slot)
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def active(self, key: str) -> int:
        return self._active.get(key, 0)

    async def acquire(self, key: str) -> None:
        active = self._active.get(key, 0)
        if active < self.per_slot and key not in self._waiting:
            self._active[key] = active + 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(waiter)
        try:
            await waiter  # release() hands its place over: the count stays as it is
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(key)  # handed a place it will not use: pass it on
            else:
                queue = self._waiting.get(key)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self._waiting[key]
            raise

    def release(self, key: str) -> None:
        queue = self._waiting.get(key)
        while queue:
            waiter = queue.popleft()
            if not queue:
                del self._waiting[key]
            if not waiter.done():
                waiter.set_result(None)  # the place passes to the first waiter
                return
        left = self._active[key] - 1
        if left:
            self._active[key] = left
        else:
            del self._active[key]


class Adapter(abc.ABC):
    """Base class: owns the batch loop; subclasses set ``channel`` and implement :meth:`deliver`.

    The base sends a batch as concurrent :meth:`send_one` calls and turns anything a send
    raises into a transient outcome, so an adapter writes the one-message path only. Every
    send, from a batch or from the pipeline's dispatcher, holds the adapter's limits, which
    are the adapter instance's (so the process's, not one batch's):

    - ``concurrency``: sends in flight at once through this adapter (its pool's size);
    - ``slot_concurrency``: sends in flight at once to one :meth:`slot_key` (a webhook host),
      so one slow host cannot take every place. A send waits for its slot's place before it
      takes one of the adapter's, so those waiting for a busy host hold nothing the others need.

    An adapter that only overrides :meth:`send` (test adapters) gets :meth:`deliver` through it.
    """

    channel: ClassVar[str]
    #: Attribute names whose values are credentials; ``repr`` masks them.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: Sends in flight at once through this adapter (``None``: the caller's window bounds them).
    concurrency: int | None = None
    #: Sends in flight at once to one slot (:meth:`slot_key`); ``None``: no cap per slot.
    slot_concurrency: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and (
            cls.deliver is Adapter.deliver and cls.send is Adapter.send
        ):
            raise TypeError(f"{cls.__name__} must implement deliver() (or send())")

    async def deliver(self, message: Message) -> Outcome:
        """Deliver one message and return its outcome; may raise (the base translates it)."""
        outcomes = await self.send([message])
        if len(outcomes) != 1:
            return Outcome.transient("adapter returned a wrong number of outcomes")
        return outcomes[0]

    async def send(self, batch: Sequence[Message]) -> list[Outcome]:
        """Deliver every message; return one outcome per message, in order. Never raises."""
        results = await asyncio.gather(*(self.send_one(m) for m in batch), return_exceptions=True)
        return [r if isinstance(r, Outcome) else self._error(r) for r in results]

    async def send_one(self, message: Message, *, limits: bool = True) -> Outcome:
        """Deliver one message; never raises. The pipeline's dispatcher calls this, one send per slot.

        ``limits=False``: the caller bounds its sends itself, at or below the adapter's limits,
        which are then not held (the pipeline's dispatcher, for the webhook adapter: see
        ``Dispatcher._holds_limits``)."""
        try:
            if not limits:
                return await self.deliver(message)
            slots = self._slot_limit()
            if slots is None:
                return await self._limited(message)
            key = self.slot_key(message)
            await slots.acquire(key)
            try:
                return await self._limited(message)
            finally:
                slots.release(key)
        except Exception as exc:  # noqa: BLE001 - a send never raises, whatever the adapter does
            return self._error(exc)

    async def _limited(self, message: Message) -> Outcome:
        limit = self._limit()
        if limit is None:
            return await self.deliver(message)
        async with limit:
            return await self.deliver(message)

    def _slot_limit(self) -> _SlotLimit | None:
        if self.slot_concurrency is None:
            return None
        slots: _SlotLimit | None = getattr(self, "_slot_limits", None)
        if slots is None:
            slots = _SlotLimit(self.slot_concurrency)
            self._slot_limits = slots
        return slots

    def _limit(self) -> asyncio.Semaphore | None:
        if self.concurrency is None:
            return None
        semaphore: asyncio.Semaphore | None = getattr(self, "_concurrency_limit", None)
        if semaphore is None:
            semaphore = asyncio.Semaphore(max(1, self.concurrency))
            self._concurrency_limit = semaphore
        return semaphore

    def _error(self, exc: BaseException) -> Outcome:
        return Outcome.transient(f"{getattr(self, 'channel', 'adapter')} adapter error: {type(exc).__name__}")

    def slot_key(self, message: Message) -> str:
        """What a send to ``message.target`` occupies, within its channel: a host, or (the default)
        the one provider every message of the channel goes through."""
        return "provider"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and clients."""

    async def __aenter__(self) -> Adapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        shown = []
        for key, value in sorted(vars(self).items()):
            if key.startswith("_"):
                continue
            shown.append(f"{key}={'***' if key in self.secret_fields and value else value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"
