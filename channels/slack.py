"""Slack through the official ``slack_sdk``: incoming webhooks and ``chat.postMessage``.

A target is either an incoming-webhook URL (sent with ``AsyncWebhookClient``,
through the same SSRF guard as webhooks unless private targets are allowed)
or ``slack:<channel-id>`` (sent with the bot token through
``AsyncWebClient.chat_postMessage``; ``base_url`` replaces
``https://slack.com/api/``).

Classification: ``ratelimited`` and HTTP 429 are transient with
``Retry-After``; bad tokens are ``auth``; a missing or archived channel is
``invalid_target``; a revoked webhook (``no_service``, ``invalid_token``) is
``endpoint_gone``; bad payloads are ``rejected``; 5xx and Slack's internal
errors are transient.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from channels._config import from_options
from channels._http import parse_retry_after
from channels.base import Adapter, Message, Outcome
from channels.circuit import CircuitBreaker
from channels.registry import register
from channels.slack_blocks import payload
from channels.ssrf import BlockedTargetError, CheckingResolver, resolve_checked

DEFAULT_BASE_URL = "https://slack.com/api/"
TARGET_PREFIX = "slack:"
API_PROVIDER = "slack-api"

AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "not_allowed_token_type",
        "team_access_not_granted",
        "no_permission",
        "ekm_access_denied",
    }
)
TARGET_ERRORS = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "channel_is_archived", "user_not_found"}
)
GONE_ERRORS = frozenset(
    {"no_service", "no_service_id", "no_team", "team_disabled", "invalid_token", "no_active_hooks"}
)
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

# slack_sdk logs request headers (the bot token among them) at DEBUG; give it a logger that says nothing.
_quiet = logging.getLogger("channels.slack.sdk")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
_quiet.setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class SlackConfig:
    bot_token: str | None = None
    base_url: str = DEFAULT_BASE_URL
    allow_private_targets: bool = False
    #: Optional extras (not yet pipeline settings).
    timeout_s: int = 15
    concurrency: int = 32

    def __repr__(self) -> str:
        token = "***" if self.bot_token else None
        return (
            f"SlackConfig(bot_token={token}, base_url={self.base_url!r}, "
            f"allow_private_targets={self.allow_private_targets})"
        )


class SlackAdapter(Adapter):
    channel = "slack"

    def __init__(self, config: SlackConfig | None = None, *, circuit: CircuitBreaker | None = None) -> None:
        self.config = config or SlackConfig()
        self.circuit = circuit or CircuitBreaker()
        self._api_session: aiohttp.ClientSession | None = None
        self._hook_session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self.concurrency = self.config.concurrency

    def _ensure(self) -> None:
        if self._hook_session is None or self._hook_session.closed:
            limit = self.config.concurrency
            self._api_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))
            # Webhook URLs belong to subscribers: their names are checked again at connect time.
            resolver = CheckingResolver(allow_private=self.config.allow_private_targets)
            self._hook_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, resolver=resolver)
            )
            self._web = AsyncWebClient(
                token=self.config.bot_token,
                base_url=self.config.base_url or DEFAULT_BASE_URL,
                timeout=self.config.timeout_s,
                session=self._api_session,
                logger=_quiet,
                retry_handlers=[],  # retries are the pipeline's durable, scheduled ones
            )

    async def deliver(self, message: Message) -> Outcome:
        self._ensure()
        target = message.target.strip()
        rendered = message.rendered.slack if message.rendered is not None else None
        body = dict(rendered) if rendered else payload(message.notification, manage_url=message.manage_url)
        if target.startswith(TARGET_PREFIX):
            channel_id = target[len(TARGET_PREFIX) :]
            if not channel_id or not channel_id.isalnum():
                return Outcome.permanent("invalid_target", "not a Slack channel id")
            if not self.config.bot_token:
                return Outcome.permanent("auth", "no Slack bot token configured")
            return await self._guarded(API_PROVIDER, self._post_message(channel_id, body))
        parts = urlsplit(target)
        allowed = ("https", "http") if self.config.allow_private_targets else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            return Outcome.permanent("invalid_target", "not a Slack webhook URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return Outcome.permanent("invalid_target", "bad port")
        key = f"slack-webhook:{parts.scheme}://{parts.hostname}:{port}"
        return await self._guarded(key, self._post_webhook(target, parts.hostname, port, body))

    async def _guarded(self, key: str, call: Any) -> Outcome:
        blocked = self.circuit.before(key)
        if blocked is not None:
            call.close()  # never awaited: close the coroutine so it does not warn
            return blocked
        outcome, host_ok = await call
        self.circuit.record(key, ok=host_ok)
        return outcome

    async def _post_message(self, channel_id: str, body: dict[str, Any]) -> tuple[Outcome, bool]:
        assert self._web is not None
        try:
            await self._web.chat_postMessage(channel=channel_id, **body)
        except SlackApiError as exc:
            response = exc.response
            error = response.get("error") if isinstance(response.data, dict) else None
            return _classified(
                response.status_code, error, _header(response.headers, "retry-after"), webhook=False
            )
        except TimeoutError:
            return Outcome.transient("slack timeout"), False
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome.transient(f"slack connection error: {type(exc).__name__}"), False
        return Outcome.delivered(), True

    async def _post_webhook(
        self, url: str, host: str, port: int, body: dict[str, Any]
    ) -> tuple[Outcome, bool]:
        try:
            await resolve_checked(host, port, allow_private=self.config.allow_private_targets)
        except BlockedTargetError as exc:
            return Outcome.permanent("blocked_target", str(exc)), True
        client = AsyncWebhookClient(
            url, timeout=self.config.timeout_s, session=self._hook_session, logger=_quiet, retry_handlers=[]
        )
        try:
            response = await client.send_dict(body)
        except TimeoutError:
            return Outcome.transient("slack webhook timeout"), False
        except aiohttp.ClientConnectorDNSError:
            return Outcome.transient("slack webhook host did not resolve to an allowed address"), False
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome.transient(f"slack webhook connection error: {type(exc).__name__}"), False
        if 200 <= response.status_code < 300:
            return Outcome.delivered(), True
        error = (response.body or "").strip()[:64] or None
        return _classified(
            response.status_code, error, _header(response.headers, "retry-after"), webhook=True
        )

    async def aclose(self) -> None:
        sessions = (self._api_session, self._hook_session)
        self._api_session = self._hook_session = None
        self._web = None
        for session in sessions:
            if session is not None and not session.closed:
                with contextlib.suppress(Exception):  # closing must not raise
                    await session.close()


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) and value else value
    return None


def _classified(status: int, error: str | None, retry_after: Any, *, webhook: bool) -> tuple[Outcome, bool]:
    outcome = classify(status, error, retry_after if isinstance(retry_after, str) else None, webhook=webhook)
    return outcome, True  # the host answered: only timeouts and connection errors count


def classify(status: int, error: str | None, retry_after: str | None = None, *, webhook: bool) -> Outcome:
    """Map a Slack reply (HTTP status and its ``error`` string) to an outcome."""
    detail = error or f"HTTP {status}"
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return Outcome.transient(f"slack {detail}", parse_retry_after(retry_after))
    if error in AUTH_ERRORS:
        return Outcome.permanent("auth", detail)
    if error in TARGET_ERRORS:
        # A webhook is bound to its channel: a gone channel means a dead webhook.
        return Outcome.permanent("endpoint_gone" if webhook else "invalid_target", detail)
    if error in GONE_ERRORS or (webhook and status in (404, 410)):
        return Outcome.permanent("endpoint_gone", detail)
    if error in TRANSIENT_ERRORS or status >= 500:
        return Outcome.transient(f"slack {detail}", parse_retry_after(retry_after))
    if status in (401, 403):
        return Outcome.permanent("auth", detail)
    return Outcome.permanent("rejected", detail)


@register("slack")
def _factory(options: Mapping[str, Any]) -> Adapter:
    return SlackAdapter(from_options(SlackConfig, options))
