"""Signed webhooks per the Standard Webhooks spec, through an httpx transport.

Each delivery resolves its target, refuses non-public addresses (unless
private targets are allowed), and connects to exactly the address it
checked: the URL carries the pinned IP while the ``Host`` header and the TLS
server name (``sni_hostname``) keep the name, so certificates are still
verified against it.

Classification: 2xx delivered; 410 permanent ``endpoint_gone`` (the pipeline
disables the subscriber); 429 and 503 transient, honouring ``Retry-After``;
a redirect is not followed and is a permanent ``rejected``; 401/403 are
``auth``; any other 4xx permanent ``rejected``; 5xx, timeouts and connection
errors transient; timeouts and connection errors (not HTTP answers) count
against the host's circuit breaker.

By default the adapter posts through :class:`channels.http1.Http1Client`, a
lean keep-alive HTTP/1.1 client chosen by measurement: a webhook is one small
POST and a status, and aiohttp's client session spent more CPU per delivery
on its request and response objects than the rest of the pipeline did. Any
``httpx.AsyncBaseTransport`` (httpx's own, ``MockTransport``,
:class:`channels.aiohttp_transport.AiohttpTransport`) can be passed instead;
both paths raise httpx's errors, classified alike.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from channels._config import from_options
from channels._http import parse_retry_after
from channels.base import Adapter, Message, Notification, Outcome
from channels.circuit import CircuitBreaker
from channels.deadlines import Deadlines, deadlines_for
from channels.http1 import Http1Client
from channels.registry import register
from channels.ssrf import BlockedTargetError, Resolver, resolve_checked

__all__ = ["WebhookAdapter", "WebhookConfig", "classify", "parse_retry_after", "sign"]

#: How much of a response body we read at most; receivers answer with a status, not a novel.
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "notifyd-webhook/0.1"
USER_AGENT_B = USER_AGENT.encode()
#: Encoded bodies kept per adapter (one per recent notification).
BODIES_KEPT = 64


@functools.lru_cache(maxsize=4096)
def _signing_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    key = _signing_key(secret)
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    #: Requests in flight at once through this adapter, from every caller (the base's limit).
    concurrency: int = 64
    allow_private_targets: bool = False
    #: At most this many requests to one host at a time, from every caller (default: half of
    #: ``concurrency``), so one slow host cannot take every place.
    per_host_concurrency: int | None = None
    #: Open connections at most (default: ``concurrency``).
    connections: int | None = None
    #: A CA bundle to trust instead of the system's (tests use a trustme CA).
    ca_file: str | None = None
    #: Resolves target names instead of the system's DNS (tests play rebinding names with it).
    resolver: Resolver | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> WebhookConfig:
        return from_options(cls, options)


class WebhookAdapter(Adapter):
    channel = "webhook"

    def __init__(
        self,
        config: WebhookConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        circuit: CircuitBreaker | None = None,
    ) -> None:
        self.config = config or WebhookConfig()
        self.circuit = circuit or CircuitBreaker()
        self._transport = transport
        self._client: Http1Client | None = None
        self._bodies: dict[int, tuple[Notification, bytes]] = {}
        self._deadlines: Deadlines | None = None
        # The base's batch loop holds both, per adapter instance (so across every batch).
        self.concurrency = self.config.concurrency
        self.slot_concurrency = self.config.per_host_concurrency or max(1, self.config.concurrency // 2)
        self._timeouts = {
            "connect": self.config.connect_timeout_s,
            "read": self.config.timeout_s,
            "write": self.config.timeout_s,
            "pool": self.config.timeout_s,
        }

    def _sender(self) -> httpx.AsyncBaseTransport | Http1Client:
        if self._transport is not None:
            return self._transport
        if self._client is None:
            context = ssl.create_default_context(cafile=self.config.ca_file)
            self._client = Http1Client(
                limit=self.config.connections or self.config.concurrency, ssl_context=context
            )
        return self._client

    def slot_key(self, message: Message) -> str:
        target = _parse_target(message.target, self.config.allow_private_targets)
        return target.key if isinstance(target, _Target) else "invalid"

    async def deliver(self, message: Message) -> Outcome:
        """One delivery; the base holds it to the adapter's limits (per host, and in all)."""
        target = _parse_target(message.target, self.config.allow_private_targets)
        if not isinstance(target, _Target):
            return Outcome.permanent("invalid_target", target)
        try:
            body = self._body(message.notification)
        except (TypeError, ValueError) as exc:
            return Outcome.permanent("rejected", f"payload: {type(exc).__name__}")
        return await self._guarded(self._sender(), message, body, target)

    def _body(self, notification: Notification) -> bytes:
        """The JSON body of a notification, encoded once for all its deliveries."""
        found = self._bodies.get(id(notification))
        if found is not None and found[0] is notification:
            return found[1]
        body = json.dumps(notification.payload, separators=(",", ":")).encode()
        if len(self._bodies) >= BODIES_KEPT:
            self._bodies.pop(next(iter(self._bodies)))
        # Keeping the notification itself keeps its id from being reused while cached.
        self._bodies[id(notification)] = (notification, body)
        return body

    async def _guarded(
        self,
        transport: httpx.AsyncBaseTransport | Http1Client,
        message: Message,
        body: bytes,
        target: _Target,
    ) -> Outcome:
        blocked = self.circuit.before(target.key)
        if blocked is not None:
            return blocked
        started = self.circuit.now()
        try:
            outcome, host_ok = await self._post(transport, message, body, target)
        except Exception as exc:  # noqa: BLE001 - one bad delivery must not take the batch with it
            return Outcome.transient(f"webhook adapter error: {type(exc).__name__}")
        self.circuit.record(target.key, ok=host_ok, started=started)
        return outcome

    async def _post(
        self,
        transport: httpx.AsyncBaseTransport | Http1Client,
        message: Message,
        body: bytes,
        target: _Target,
    ) -> tuple[Outcome, bool]:
        """The outcome, and whether the host answered sanely (for its circuit)."""
        try:
            address = await resolve_checked(
                target.host,
                target.port,
                allow_private=self.config.allow_private_targets,
                resolver=self.config.resolver,
            )
        except BlockedTargetError as exc:
            return Outcome.permanent("blocked_target", str(exc)), True
        # Connect to the address that passed the check; Host and SNI keep the name.
        timestamp = int(time.time())
        signature: str | None = None
        if message.secret:
            try:
                signature = sign(message.secret, message.delivery_id, timestamp, body)
            except ValueError:
                # Never echo the secret; say only that it is unusable.
                return Outcome.permanent("rejected", "subscriber secret is not valid base64"), True
        echo = message.expect_echo
        self._deadlines = deadlines = deadlines_for(asyncio.get_running_loop(), self._deadlines)
        try:
            # One total deadline over connect, send and the capped read, whatever the transport.
            if isinstance(transport, Http1Client):
                request = transport.post(
                    target.scheme,
                    address,
                    target.port,
                    _head(target, message.delivery_id, timestamp, len(body), signature),
                    body,
                    sni=target.host,
                    connect_timeout=self.config.connect_timeout_s,
                    header=b"retry-after",
                    read_limit=MAX_RESPONSE_BYTES,
                    keep=MAX_RESPONSE_BYTES if echo is not None else 0,
                )
                answer = await deadlines.within(self.config.timeout_s, request)
                status, retry_after, text = answer.status, answer.header, answer.body
            else:
                status, retry_after, text = await deadlines.within(
                    self.config.timeout_s,
                    self._post_httpx(transport, target, address, message, timestamp, body, signature),
                )
        except (httpx.TimeoutException, TimeoutError):
            return Outcome.transient("timeout"), False
        except httpx.TransportError as exc:
            return Outcome.transient(f"connection error: {type(exc).__name__}"), False
        except (httpx.InvalidURL, ValueError) as exc:
            return Outcome.permanent("invalid_target", type(exc).__name__), True
        # Only 429/503 look at Retry-After.
        if status not in (429, 503):
            retry_after = None
        if echo is not None and 200 <= status < 300 and echo.encode() not in text:
            # A confirmation challenge: a 2xx that does not echo it proves nothing about the owner.
            return Outcome.permanent("rejected", "the endpoint did not echo the challenge"), True
        # Any answer, even a 5xx, means the host is up and answering fast: only failures to get
        # an answer (timeouts, refused or reset connections) eat worker time and count.
        return classify(status, retry_after), True

    async def _post_httpx(
        self,
        transport: httpx.AsyncBaseTransport,
        target: _Target,
        address: str,
        message: Message,
        timestamp: int,
        body: bytes,
        signature: str | None,
    ) -> tuple[int, str | None, bytes]:
        """The request through any httpx transport: (status, Retry-After, kept body)."""
        url = _pinned_url(target, address)
        delivery_id = message.delivery_id.encode("ascii", "replace")
        # Raw byte headers and a ready body stream: building an httpx.Request from a dict and
        # ``content=`` costs several times more, per delivery, than the whole signing.
        headers = [
            (b"host", target.host_header),
            (b"user-agent", USER_AGENT_B),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"webhook-id", delivery_id),
            (b"webhook-timestamp", str(timestamp).encode("ascii")),
            (b"idempotency-key", delivery_id),
        ]
        if signature is not None:
            headers.append((b"webhook-signature", signature.encode("ascii")))
        extensions: dict[str, Any] = {"timeout": self._timeouts}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        request = httpx.Request(
            "POST", url, headers=headers, stream=httpx.ByteStream(body), extensions=extensions
        )
        request.read()
        response = await transport.handle_async_request(request)
        try:
            answer = await _read_capped(response, keep=message.expect_echo is not None)
        finally:
            await response.aclose()
        # Reading headers decodes them all: only 429 and 503 need Retry-After.
        status = response.status_code
        retry_after = response.headers.get("retry-after") if status in (429, 503) else None
        return status, retry_after, answer

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing must not raise
                await client.aclose()


@dataclass(frozen=True, slots=True)
class _Target:
    """A webhook URL taken apart once: what every delivery to it needs."""

    key: str  # scheme://host:port, the circuit breaker's and the per-host limit's key
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    explicit_port: bool
    path_query: str
    host_header: bytes
    host_header_str: str


#: What a path and query keep unencoded: RFC 3986's unreserved and reserved characters, and "%".
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


#: A target is parsed when its delivery is queued (its host's slot) and again when it is sent;
#: between the two wait up to a window in flight and a time slice of queued sends (~8-12k per
#: process at the default window), and at 8,192 entries the second parse missed.
@functools.lru_cache(maxsize=32768)
def _parse_target(target: str, allow_private: bool) -> _Target | str:
    """The parsed target, or why it is not a usable one."""
    try:
        parts = urlsplit(target.strip())
        host = parts.hostname or ""
        explicit = parts.port
    except ValueError:
        return "not a URL"
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed or not host:
        return "not an https URL"
    try:
        host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return "bad host name"
    port = explicit or (443 if parts.scheme == "https" else 80)
    bracketed = f"[{host}]" if ":" in host else host
    host_header = f"{bracketed}:{explicit}" if explicit else bracketed
    path_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Percent-encode what may not appear in a request line as it is (spaces, controls, non-ASCII);
    # what is encoded already stays as it is.
    path_query = quote(path_query, safe=_PATH_SAFE)
    return _Target(
        key=f"{parts.scheme}://{bracketed}:{port}",
        scheme=parts.scheme,
        host=host,
        port=port,
        explicit_port=bool(explicit),
        path_query=path_query,
        host_header=host_header.encode("ascii"),
        host_header_str=host_header,
    )


def _head(target: _Target, delivery_id: str, timestamp: int, length: int, signature: str | None) -> bytes:
    """The request line and headers, as one buffer (the path is percent-encoded already)."""
    if "\r" in delivery_id or "\n" in delivery_id:
        raise ValueError("delivery id")
    signed = f"webhook-signature: {signature}\r\n" if signature is not None else ""
    return (
        f"POST {target.path_query} HTTP/1.1\r\nHost: {target.host_header_str}\r\n"
        f"User-Agent: {USER_AGENT}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
        f"webhook-id: {delivery_id}\r\nwebhook-timestamp: {timestamp}\r\nidempotency-key: {delivery_id}\r\n"
        f"{signed}\r\n"
    ).encode("ascii")


@functools.lru_cache(maxsize=8192)
def _pinned_url(target: _Target, address: str) -> httpx.URL:
    """The URL with the checked address in place of the name (parsing it costs more than signing)."""
    netloc = f"[{address}]" if ":" in address else address
    if target.explicit_port:
        netloc += f":{target.port}"
    return httpx.URL(f"{target.scheme}://{netloc}{target.path_query}")


async def _read_capped(response: httpx.Response, *, keep: bool = False) -> bytes:
    """Drain at most MAX_RESPONSE_BYTES of the answer; return them when ``keep``."""
    read = 0
    kept: list[bytes] = []
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    async for chunk in stream:
        read += len(chunk)
        if keep:
            kept.append(chunk)
        if read >= MAX_RESPONSE_BYTES:
            break
    return b"".join(kept)


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
