"""A small Python client of notifyd's HTTP API, for publishers and operators.

    with Client("http://127.0.0.1:8080", key) as api:
        api.publish(event)                       # {"event_id", "status"}
        for d in api.deliveries(event_id, status="failed"):
            ...

Errors arrive as :class:`ApiError`, carrying the problem document's fields;
httpx's own exceptions are translated at this boundary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_TIMEOUT = 10.0


class ApiError(Exception):
    """A refused or failed request. ``errors`` lists (field, message) pairs from the problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[tuple[str, str]] | None = None,
        retry_after: float | None = None,
        written: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after
        #: On a refused publish: what the server kept, "nothing", "event" or "unknown".
        self.written = written


class Client:
    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "notifyd-client"},
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:  # never the key
        return f"Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _paginate(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            query = {k: v for k, v in params.items() if v is not None}
            if cursor is not None:
                query["cursor"] = cursor
            page = self._json("GET", path, params=query)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if cursor is None:
                return

    # -- publishers -----------------------------------------------------------------------

    def publish(self, event: dict[str, Any] | str | bytes) -> dict[str, str]:
        """Publish one event; ``{"event_id", "status"}`` with status accepted, duplicate or deduplicated."""
        body = event if isinstance(event, bytes | str) else json.dumps(event)
        headers = {"Content-Type": "application/json"}
        result: dict[str, str] = self._json("POST", "/v1/events", content=body, headers=headers)
        return result

    # -- operators ------------------------------------------------------------------------

    def event(self, event_id: str, *, page: str | None = None) -> dict[str, Any]:
        """The event's summary. ``page`` is needed only when several pages used this event id."""
        params = {"page": page} if page is not None else None
        result: dict[str, Any] = self._json("GET", f"/v1/events/{_seg(event_id)}", params=params)
        return result

    def deliveries_page(
        self,
        event_id: str,
        *,
        cursor: str | None = None,
        limit: int = 100,
        status: str | None = None,
        channel: str | None = None,
        page: str | None = None,
    ) -> dict[str, Any]:
        params = {"cursor": cursor, "limit": limit, "status": status, "channel": channel, "page": page}
        result: dict[str, Any] = self._json(
            "GET",
            f"/v1/events/{_seg(event_id)}/deliveries",
            params={k: v for k, v in params.items() if v is not None},
        )
        return result

    def deliveries(
        self,
        event_id: str,
        *,
        status: str | None = None,
        channel: str | None = None,
        limit: int = 500,
        page: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every delivery of the event (following cursors)."""
        params = {"status": status, "channel": channel, "limit": limit, "page": page}
        return self._paginate(f"/v1/events/{_seg(event_id)}/deliveries", params)

    def redrive(self, event_id: str, *, page: str | None = None) -> int:
        """Re-send the event's failed deliveries; returns how many."""
        params = {"page": page} if page is not None else None
        return int(self._json("POST", f"/v1/events/{_seg(event_id)}/redrive", params=params)["redriven"])

    def subscriber_deliveries(self, subscriber_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", f"/v1/subscribers/{_seg(subscriber_id)}/deliveries")[
            "items"
        ]
        return items

    def page_status(self, page_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/pages/{_seg(page_id)}/status")
        return result

    def queues(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/v1/queues")
        return result

    # -- subscribers (scope admin) ---------------------------------------------------------

    def add_subscriber(self, page_id: str, subscriber: dict[str, Any]) -> dict[str, Any]:
        """Adds or updates; a generated webhook ``secret`` is in this answer only."""
        result: dict[str, Any] = self._json("POST", f"/v1/pages/{_seg(page_id)}/subscribers", json=subscriber)
        return result

    def list_subscribers(self, page_id: str, *, limit: int = 500) -> Iterator[dict[str, Any]]:
        return self._paginate(f"/v1/pages/{_seg(page_id)}/subscribers", {"limit": limit})

    def remove_subscriber(self, page_id: str, subscriber_id: str) -> None:
        self._request("DELETE", f"/v1/pages/{_seg(page_id)}/subscribers/{_seg(subscriber_id)}")

    def import_subscribers(self, page_id: str, rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Stream ``rows`` as NDJSON (a generator is never held in memory whole)."""

        def ndjson() -> Iterator[bytes]:
            for row in rows:
                yield (json.dumps(row, separators=(",", ":")) + "\n").encode()

        result: dict[str, Any] = self._json(
            "POST",
            f"/v1/pages/{_seg(page_id)}/subscribers:import",
            content=ndjson(),
            headers={"Content-Type": "application/x-ndjson"},
            timeout=None,
        )
        return result


def _seg(value: str) -> str:
    return quote(value, safe="")


def _error_from(response: httpx.Response) -> ApiError:
    detail = response.reason_phrase or "error"
    errors: list[tuple[str, str]] = []
    written: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = str(body.get("detail") or detail)
        errors = [(str(e.get("field")), str(e.get("message"))) for e in body.get("errors") or []]
        written = str(body["written"]) if body.get("written") else None
    retry_after = response.headers.get("Retry-After")
    return ApiError(
        response.status_code,
        detail,
        errors=errors,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        written=written,
    )


__all__ = ["ApiError", "Client"]
