"""Security headers: every answer is ``nosniff``; every HTML page gets a CSP that forbids framing.

The dashboard and the status, unsubscribe and docs pages are HTML. Their CSP lets them load
only from this origin (the dashboard's CSS and JS are inline, so inline is allowed and nothing
else); the interactive API docs also load Swagger UI and ReDoc from the one CDN FastAPI uses.
``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` stop clickjacking of the redrive and
unsubscribe buttons; ``Referrer-Policy: no-referrer`` keeps unsubscribe tokens in their URLs.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BASE = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
#: Pages that are one static document: the dashboard and the status and unsubscribe pages.
PAGE_CSP = f"{_BASE}; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"
#: /docs and /redoc: FastAPI's Swagger UI and ReDoc load from jsDelivr.
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    f"{_BASE}; script-src 'self' 'unsafe-inline' {DOCS_CDN}; style-src 'self' 'unsafe-inline' {DOCS_CDN} "
    "https://fonts.googleapis.com; font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; worker-src blob:"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = DOCS_CSP if path in DOCS_PATHS else PAGE_CSP
                    headers["X-Frame-Options"] = "DENY"
                    headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, with_headers)
