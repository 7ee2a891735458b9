"""Signed webhooks over httpx, per the Standard Webhooks spec.

Classification: 2xx delivered; 410 permanent ``endpoint_gone`` (the pipeline
disables the subscriber); 429 and 503 transient, honouring ``Retry-After``;
any other 4xx permanent; 5xx, timeouts and connection errors transient.
Redirects are never followed: a redirect is a permanent ``rejected``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from channels.base import Adapter, Message, Outcome
from channels.registry import register
from channels.ssrf import BlockedTargetError, resolve_checked

#: How much of a response body we read at most; receivers answer with a status, not a novel.
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "notifyd-webhook/0.1"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    concurrency: int = 64
    allow_private_targets: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> WebhookConfig:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in options.items() if k in fields})


class WebhookAdapter(Adapter):
    channel = "webhook"

    def __init__(self, config: WebhookConfig | None = None, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config or WebhookConfig()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self.config.concurrency, max_keepalive_connections=self.config.concurrency
            )
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
                limits=limits,
                follow_redirects=False,
                transport=self._transport,
                headers={"user-agent": USER_AGENT},
            )
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        return self._client

    async def send(self, batch: Sequence[Message]) -> list[Outcome]:
        client = self._ensure_client()
        assert self._semaphore is not None
        semaphore = self._semaphore
        bodies: dict[str, bytes] = {}

        async def one(message: Message) -> Outcome:
            # All messages of a batch share one notification; encode its body once.
            body = bodies.get(message.notification.event_id)
            if body is None:
                body = json.dumps(message.notification.payload, separators=(",", ":")).encode()
                bodies[message.notification.event_id] = body
            async with semaphore:
                return await self._post(client, message, body)

        return list(await asyncio.gather(*(one(m) for m in batch)))

    async def _post(self, client: httpx.AsyncClient, message: Message, body: bytes) -> Outcome:
        url = message.target
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await resolve_checked(host, port, allow_private=self.config.allow_private_targets)
        except BlockedTargetError as exc:
            return Outcome.permanent("blocked_target", str(exc))
        # Connect to the address that passed the check; Host and SNI keep the name.
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        timestamp = int(time.time())
        headers = {
            "host": parts.netloc.rsplit("@", 1)[-1],
            "content-type": "application/json",
            "webhook-id": message.delivery_id,
            "webhook-timestamp": str(timestamp),
            "idempotency-key": message.delivery_id,
        }
        if message.secret:
            headers["webhook-signature"] = sign(message.secret, message.delivery_id, timestamp, body)
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            request = client.build_request("POST", pinned, content=body, headers=headers, extensions=extensions)
            response = await client.send(request, stream=True)
            try:
                await _read_capped(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return Outcome.transient("timeout")
        except httpx.TransportError as exc:
            return Outcome.transient(f"connection error: {type(exc).__name__}")
        return classify(response.status_code, response.headers.get("retry-after"))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _read_capped(response: httpx.Response) -> None:
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= MAX_RESPONSE_BYTES:
            break


def classify(status: int, retry_after_header: str | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome.delivered()
    if status == 410:
        return Outcome.permanent("endpoint_gone", "HTTP 410")
    if status in (429, 503):
        return Outcome.transient(f"HTTP {status}", parse_retry_after(retry_after_header))
    if 300 <= status < 400:
        return Outcome.permanent("rejected", f"HTTP {status} redirect not followed")
    if status in (401, 403):
        return Outcome.permanent("auth", f"HTTP {status}")
    if 400 <= status < 500:
        return Outcome.permanent("rejected", f"HTTP {status}")
    return Outcome.transient(f"HTTP {status}")


@register("webhook")
def _factory(options: Mapping[str, Any]) -> Adapter:
    return WebhookAdapter(WebhookConfig.from_options(options))
