"""Security headers: every answer is ``nosniff``; every HTML page gets a CSP that forbids framing.

The dashboard and the status, unsubscribe and docs pages are HTML. Their CSP lets them load
only from this origin (the dashboard's CSS and JS are inline, so inline is allowed and nothing
else); the API docs pages load Swagger UI and ReDoc from this origin too (``apidocs.py``), with
no inline script, so their CSP allows nothing but this origin.
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
#: /docs: Swagger UI from the package (notifyd/api/apidocs.py), started by a file, not an inline
#: script: this origin and nothing else.
DOCS_CSP = f"{_BASE}; script-src 'self'; style-src 'self'; connect-src 'self'"
#: /redoc: ReDoc writes its styles at run time (styled-components), so inline styles are allowed,
#: and it searches in a worker it starts from a blob; still nothing from another origin.
REDOC_CSP = (
    f"{_BASE}; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; worker-src blob:"
)
#: The CSP of the pages that are not one static document.
CSP_BY_PATH = {"/docs": DOCS_CSP, "/redoc": REDOC_CSP}


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
                    headers["Content-Security-Policy"] = CSP_BY_PATH.get(path, PAGE_CSP)
                    headers["X-Frame-Options"] = "DENY"
                    headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, with_headers)
