"""The adapters of one process, built once from settings and reused across shards."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from channels import registry
from channels.base import Adapter, Message, Outcome
from channels.circuit import CircuitBreaker
from notifyd.pipeline.asyncrunner import AsyncRunner
from notifyd.runtime.settings import CHANNELS, Settings


def _secret(value: Any) -> Any:
    return value.get_secret_value() if value is not None and hasattr(value, "get_secret_value") else value


def channel_options(settings: Settings, channel: str) -> dict[str, Any]:
    """Turn notifyd settings into the plain options an adapter factory takes."""
    if channel == "webhook":
        # The dispatcher bounds the pipeline's sends by its window and its per-host caps (adaptive,
        # per lane): the adapter's own limits, which every caller holds, must not bind below them.
        window = max(settings.webhook_concurrency, settings.dispatch_window)
        return {
            "timeout_s": settings.webhook_timeout_s,
            "connect_timeout_s": settings.webhook_connect_timeout_s,
            "concurrency": window,
            "per_host_concurrency": window,
            "connections": window,
            "allow_private_targets": settings.allow_private_targets,
        }
    if channel == "email":
        return {
            "host": settings.smtp_host,
            "port": settings.smtp_port,
            "username": settings.smtp_username,
            "password": _secret(settings.smtp_password),
            "tls": settings.smtp_tls,
            "sender": settings.smtp_from,
        }
    if channel == "sms":
        return {
            "account_sid": settings.twilio_account_sid,
            "auth_token": _secret(settings.twilio_auth_token),
            "sender": settings.twilio_from,
            "base_url": settings.twilio_base_url,
            "status_callback_url": settings.public_url.rstrip("/") + "/v1/callbacks/twilio",
        }
    if channel == "slack":
        return {
            "bot_token": _secret(settings.slack_bot_token),
            "base_url": settings.slack_base_url,
            "allow_private_targets": settings.allow_private_targets,
        }
    raise registry.UnknownChannelError(f"no adapter for channel {channel!r}")


class AdapterPool:
    def __init__(self, settings: Settings, runner: AsyncRunner | None = None) -> None:
        self.settings = settings
        self.runner = runner or AsyncRunner(
            stall_timeout_s=settings.loop_stall_timeout_ms / 1000, loop=settings.event_loop
        )
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()
        self._sibling: AdapterPool | None = None

    def sibling(self) -> AdapterPool:
        """The same adapters, built again on an event loop of their own (the urgent lanes' sends:
        see notifyd/pipeline/dispatcher.py). Closed with this pool."""
        with self._lock:
            if self._sibling is None:
                self._sibling = AdapterPool(self.settings)
            return self._sibling

    def check(self) -> None:
        """Fail at start-up, not at send time, when a channel has no adapter."""
        for channel in CHANNELS:
            registry.factory_for(channel)

    def adapter(self, channel: str) -> Adapter:
        # The dispatcher asks once per delivery: a built adapter is read without the lock.
        found = self._adapters.get(channel)
        if found is not None:
            return found
        with self._lock:
            adapter = self._adapters.get(channel)
            if adapter is None:
                adapter = registry.build(channel, channel_options(self.settings, channel))
                self._adapters[channel] = adapter
            return adapter

    def send(self, channel: str, batch: Sequence[Message]) -> list[Outcome]:
        if not batch:
            return []
        adapter = self.adapter(channel)
        try:
            outcomes = self.runner.run(adapter.send(batch))
        except Exception as exc:  # noqa: BLE001 - a broken adapter must not stop the pipeline
            return [Outcome.transient(f"adapter error: {type(exc).__name__}") for _ in batch]
        if len(outcomes) != len(batch):
            return [Outcome.transient("adapter returned a wrong number of outcomes") for _ in batch]
        return outcomes

    def open_circuits(self) -> list[tuple[str, str, str, float]]:
        """``(channel, key, state, seconds to the next probe)`` of this process's open circuits."""
        with self._lock:
            adapters = list(self._adapters.items())
            sibling = self._sibling
        found: list[tuple[str, str, str, float]] = []
        for channel, adapter in adapters:
            circuit = getattr(adapter, "circuit", None)
            if isinstance(circuit, CircuitBreaker):
                found.extend((channel, key, state.value, left) for key, state, left in circuit.not_closed())
        if sibling is not None:
            found.extend(sibling.open_circuits())
        return found

    def close(self) -> None:
        with self._lock:
            sibling, self._sibling = self._sibling, None
        if sibling is not None:
            sibling.close()
        adapters, self._adapters = list(self._adapters.values()), {}

        async def close_all() -> None:
            await asyncio.gather(*(a.aclose() for a in adapters), return_exceptions=True)

        if adapters:
            self.runner.run(close_all(), timeout=10)
        self.runner.stop()
