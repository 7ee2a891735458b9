"""SMS through the official ``twilio`` client, asynchronously.

The client's requests go through :class:`_AiohttpTwilioClient`, a small
``AsyncHttpClient`` on one pooled aiohttp session per adapter: twilio's own
``AsyncTwilioHttpClient`` takes no connect/total timeout and hides the
``Retry-After`` header, both of which we need. ``base_url`` replaces
``https://api.twilio.com`` (the ``Api`` domain's base URL), so tests and the
demo aim the real client at a loopback stand-in.

Classification: Twilio's error codes for a bad or unreachable number are
permanent ``invalid_target`` (the pipeline disables the subscriber), 21610
(the recipient replied STOP) is ``unsubscribed``, 20003 is ``auth``; 429 and
5xx are transient and honour ``Retry-After``; other 4xx are ``rejected``.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from channels._config import from_options
from channels._http import parse_retry_after
from channels.base import Adapter, Message, Outcome
from channels.circuit import CircuitBreaker
from channels.registry import register
from channels.sms_status import PERMANENT_ERROR_CODES
from channels.sms_text import compose

DEFAULT_BASE_URL = "https://api.twilio.com"
PROVIDER = "twilio"

# The Retry-After of the last reply, per task: gather() runs each message in its own
# task, so the value read after create_async() is the one of that message's request.
_retry_after: contextvars.ContextVar[str | None] = contextvars.ContextVar("twilio_retry_after", default=None)


@dataclass(frozen=True, slots=True)
class SMSConfig:
    account_sid: str | None = None
    auth_token: str | None = None
    sender: str | None = None
    base_url: str = DEFAULT_BASE_URL
    #: Optional extras (not yet pipeline settings).
    timeout_s: float = 15.0
    connect_timeout_s: float = 5.0
    concurrency: int = 16
    #: When set, Twilio reports delivery to this URL (with ``delivery_id`` added to its query).
    status_callback_url: str | None = None

    def __repr__(self) -> str:
        token = "***" if self.auth_token else None
        return (
            f"SMSConfig(account_sid={self.account_sid!r}, auth_token={token}, sender={self.sender!r}, "
            f"base_url={self.base_url!r})"
        )


class _AiohttpTwilioClient(AsyncHttpClient):
    """twilio's async HTTP client interface on one aiohttp session, with real timeouts."""

    def __init__(self, session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout) -> None:
        super().__init__(logger=_null_logger(), is_async=True)
        self.session = session
        self.client_timeout = timeout

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        headers = dict(headers or {})
        if auth:
            # Built by hand: aiohttp 3.14 deprecates BasicAuth objects.
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        async with self.session.request(
            method.upper(),
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            timeout=self.client_timeout,
            allow_redirects=False,
        ) as response:
            text = await response.text()
            _retry_after.set(response.headers.get("retry-after"))
            return TwilioResponse(response.status, text, dict(response.headers))


def _null_logger() -> Any:
    import logging

    logger = logging.getLogger("channels.sms.twilio_http")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


class SMSAdapter(Adapter):
    channel = "sms"

    def __init__(self, config: SMSConfig | None = None, *, circuit: CircuitBreaker | None = None) -> None:
        self.config = config or SMSConfig()
        self.circuit = circuit or CircuitBreaker()
        self._session: aiohttp.ClientSession | None = None
        self._client: Client | None = None
        self.concurrency = self.config.concurrency

    def _ensure_client(self) -> Client:
        if self._client is None or self._session is None or self._session.closed:
            cfg = self.config
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=cfg.concurrency), trust_env=False
            )
            http = _AiohttpTwilioClient(
                self._session, aiohttp.ClientTimeout(total=cfg.timeout_s, connect=cfg.connect_timeout_s)
            )
            # environment={} keeps TWILIO_* variables (edge, region) from redirecting the client.
            client = Client(cfg.account_sid, cfg.auth_token, http_client=http, environment={})
            client.api.base_url = cfg.base_url.rstrip("/")
            self._client = client
        return self._client

    async def deliver(self, message: Message) -> Outcome:
        if not (self.config.account_sid and self.config.auth_token and self.config.sender):
            return Outcome.permanent("auth", "Twilio account, token or sender not configured")
        client = self._ensure_client()
        rendered = message.rendered.sms if message.rendered is not None else None
        body = rendered if rendered else compose(message.notification, manage_url=message.manage_url)
        kwargs: dict[str, Any] = {"to": message.target, "from_": self.config.sender, "body": body}
        if self.config.status_callback_url:
            kwargs["status_callback"] = status_callback_for(self.config.status_callback_url, message)
        blocked = self.circuit.before(PROVIDER)
        if blocked is not None:
            return blocked
        outcome, host_ok = await self._create(client, kwargs)
        self.circuit.record(PROVIDER, ok=host_ok)
        return outcome

    async def _create(self, client: Client, kwargs: dict[str, Any]) -> tuple[Outcome, bool]:
        _retry_after.set(None)
        try:
            await client.messages.create_async(**kwargs)
        except TwilioException as exc:
            status = int(getattr(exc, "status", 0) or 0)
            code = getattr(exc, "code", None)
            outcome = classify(status, code if isinstance(code, int) else None, _retry_after.get())
            return outcome, status != 0  # an HTTP answer, even a 5xx, is not a dead host
        except TimeoutError:
            return Outcome.transient("twilio timeout"), False
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome.transient(f"twilio connection error: {type(exc).__name__}"), False
        except ValueError as exc:
            # The client refuses a reply it cannot parse; the API answered, so the host is alive.
            return Outcome.transient(f"twilio bad reply: {type(exc).__name__}"), True
        return Outcome.delivered(), True

    async def aclose(self) -> None:
        session, self._session, self._client = self._session, None, None
        if session is not None and not session.closed:
            with contextlib.suppress(Exception):  # closing must not raise
                await session.close()


def classify(status: int, code: int | None, retry_after: str | None = None) -> Outcome:
    """Map a Twilio error reply to an outcome."""
    detail = f"Twilio {code}" if code else f"HTTP {status}"
    if code is not None and code in PERMANENT_ERROR_CODES:
        return Outcome.permanent(PERMANENT_ERROR_CODES[code], detail)
    if status == 429 or code == 20429 or status >= 500 or status == 0:
        return Outcome.transient(detail, parse_retry_after(retry_after))
    if status in (401, 403):
        return Outcome.permanent("auth", detail)
    if 400 <= status < 500:
        return Outcome.permanent("rejected", detail)
    return Outcome.transient(detail)


@register("sms")
def _factory(options: Mapping[str, Any]) -> Adapter:
    return SMSAdapter(from_options(SMSConfig, options))


def status_callback_for(base_url: str, message: Message) -> str:
    """``<base>/<delivery_id>?event=..&subscriber=..``: Twilio signs the whole URL, query included,
    so the receiver can trust the ids in it."""
    query = urlencode({"event": message.notification.event_id, "subscriber": message.subscriber_id})
    return f"{base_url.rstrip('/')}/{quote(message.delivery_id, safe='')}?{query}"
