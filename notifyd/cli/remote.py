"""The CLI's path to a running notifyd over its HTTP API (``--api URL``), through ``notifyd.client``.

The key comes from ``NOTIFYD_API_KEY`` only: a key on the command line would
show in ``ps`` and in shell history.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from notifyd.cli.common import RemoteError
from notifyd.client import ApiError, Client
from notifyd.publish import EventError
from notifyd.runtime.durability import NotDurable


def connect(url: str) -> Client:
    key = os.environ.get("NOTIFYD_API_KEY", "").strip()
    if not key:
        raise RemoteError("--api needs NOTIFYD_API_KEY set to a key with the publish or operate scope")
    return Client(url, key)


def publisher(client: Client) -> Callable[[str], dict[str, Any]]:
    def publish(line: str) -> dict[str, Any]:
        try:
            return dict(client.publish(line))
        except ApiError as exc:
            if exc.status in (400, 413, 422):
                raise EventError(exc.detail) from None
            if exc.status == 503 and exc.written in ("nothing", "event", "unknown"):
                raise NotDurable(exc.detail, written=exc.written) from None  # type: ignore[arg-type]
            raise RemoteError(str(exc)) from None

    return publish


def event_lookup(client: Client, *, page: str | None = None) -> Callable[[str], dict[str, Any] | None]:
    def lookup(event_id: str) -> dict[str, Any] | None:
        try:
            return client.event(event_id, page=page)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise RemoteError(str(exc)) from None

    return lookup
