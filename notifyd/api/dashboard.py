"""GET /dashboard: the live operations page. The key comes once in ``?key=``, then lives in a cookie.

The page is a single static file with inline CSS and JS and hand-drawn SVG charts
(the machines it runs on may have no internet). It polls ``GET /v1/queues`` and
``GET /v1/stats/*`` on its cookie, and redrives with the cookie plus the CSRF
token this route writes into the page (see :mod:`notifyd.api.auth`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from notifyd.api.auth import COOKIE, authenticate, authenticate_session, client_address, csrf_token
from notifyd.api.context import context_of
from notifyd.api.keystore import SESSION_TTL_S
from notifyd.api.problems import documented

router = APIRouter(tags=["operations"])


@lru_cache(maxsize=1)
def page_html() -> str:
    return resources.files("notifyd.api").joinpath("static/dashboard.html").read_text(encoding="utf-8")


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    responses={303: {"description": "The key was moved from the URL into a cookie"}, **documented(401, 403)},
    summary="The live queue dashboard (scope operate; ?key= once, then a cookie)",
)
async def dashboard(request: Request, key: Annotated[str | None, Query(max_length=256)] = None) -> Response:
    ctx = context_of(request)
    if key:
        await run_in_threadpool(authenticate, ctx, key, "operate", client_address(request))
        # Move the key out of the address bar (and browser history); the HttpOnly cookie holds a
        # session id that maps to the key's hash, so the browser never stores the key itself.
        session = await run_in_threadpool(ctx.sessions.create, key)
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(
            COOKIE,
            session,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
            max_age=SESSION_TTL_S,
        )
        return response
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    cookie_session: str | None = None if bearer else request.cookies.get(COOKIE)
    address = client_address(request)
    if cookie_session:
        principal = await run_in_threadpool(authenticate_session, ctx, cookie_session, "operate", address)
    else:
        principal = await run_in_threadpool(authenticate, ctx, bearer, "operate", address)
    # The page's writes ride on the session cookie; a page fetched with a bearer key has none.
    page = (
        page_html()
        .replace("{{csrf}}", csrf_token(cookie_session or ""))
        .replace("{{scopes}}", " ".join(sorted(principal.scopes)))
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
