"""Bearer-key authentication and scopes, as FastAPI dependencies.

A missing or unknown key is a 401 (with ``WWW-Authenticate: Bearer``); a
known key without the scope is a 403. Keys are looked up by their SHA-256
(see :mod:`notifyd.api.keystore`); the key itself is never stored, logged or
echoed.

The dashboard's routes also accept its HttpOnly session cookie. The cookie holds a
random session id, never the key (see :class:`~notifyd.api.keystore.DashboardSessions`).
A cookie is sent by the browser on its own, so a cookie alone would let another site
make an operator's browser redrive (cross-site request forgery). A route that changes
something therefore takes the cookie only together with an ``X-Notifyd-CSRF``
header holding :func:`csrf_token` of that same session: the dashboard page carries the
token in its HTML, another origin can neither read that page nor set a custom
header on a cross-site request (there is no CORS here). The token is an HMAC keyed by
the session id, so it is stateless, dies with the session, and reveals nothing about it.

Pages: a key may be limited to some pages (see :class:`~notifyd.api.keystore.Grant`).
:func:`require` checks a ``{page_id}`` in the route's path itself, so no route
with a page in its path can forget it: another page is a 403. Routes that reach
a page through something else (an event id, a subscriber id, a body) call
:meth:`Principal.check_page`; routes that list filter with :meth:`Principal.reaches`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notifyd.api.context import ApiContext, context_of
from notifyd.api.keystore import Grant, hash_key
from notifyd.api.problems import ProblemError

COOKIE = "notifyd_session"
CSRF_HEADER = "X-Notifyd-CSRF"
#: Methods that change nothing; only these take the cookie without the CSRF header.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Documents the scheme in OpenAPI; we check the header ourselves (auto_error=False).
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
_bearer = Security(bearer_scheme)


@dataclass(frozen=True, slots=True)
class Principal:
    #: A prefix of the key's SHA-256: enough to tell keys apart in rate limits, useless to an attacker.
    key_id: str
    grant: Grant

    @property
    def scopes(self) -> frozenset[str]:
        return self.grant.scopes

    @property
    def pages(self) -> frozenset[str] | None:
        """The pages this key reaches; None for an all-pages key."""
        return self.grant.pages

    def reaches(self, page_id: str) -> bool:
        return self.grant.reaches(page_id)

    def check_page(self, page_id: str) -> None:
        """403 unless this key reaches ``page_id`` (for a page the caller named itself)."""
        if not self.reaches(page_id):
            raise ProblemError(403, f"this key is not valid for page {page_id!r}", kind="forbidden")


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, headers={"WWW-Authenticate": "Bearer"}, kind="unauthorized")


def _throttled(ctx: ApiContext, address: str | None) -> None:
    if address is None:
        return
    wait = ctx.auth_throttle.retry_after(address)
    if wait is not None:
        raise ProblemError(
            429,
            "too many failed authentications from this address; wait and retry",
            headers={"Retry-After": str(int(wait))},
            kind="rate-limited",
        )


def _authorize(
    ctx: ApiContext, digest: str | None, scope: str, address: str | None, unknown: str
) -> Principal:
    grant = ctx.keystore.grant_for_digest(digest) if digest is not None else None
    if grant is None:
        if address is not None:
            ctx.auth_throttle.failed(address)
        raise _unauthorized(unknown)
    if scope not in grant.scopes:
        raise ProblemError(403, f"this key lacks the {scope!r} scope", kind="forbidden")
    return Principal(digest[:16] if digest else "", grant)


def authenticate(ctx: ApiContext, key: str | None, scope: str, address: str | None = None) -> Principal:
    """The key's principal, or a 401/403. ``address`` (the client's) is throttled after too
    many wrong keys (see :class:`~notifyd.api.ratelimit.AuthThrottle`)."""
    _throttled(ctx, address)
    if not key:
        raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
    return _authorize(ctx, hash_key(key), scope, address, "unknown API key")


def authenticate_session(ctx: ApiContext, session: str, scope: str, address: str | None) -> Principal:
    """The principal of a dashboard session cookie, as its key's."""
    _throttled(ctx, address)
    digest = ctx.sessions.digest_for(session)
    return _authorize(
        ctx, digest, scope, address, "the dashboard session has expired; open /dashboard?key=<key> again"
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def csrf_token(session: str) -> str:
    """The dashboard's token for writes made with the ``session`` cookie."""
    return hmac.new(session.encode(), b"notifyd dashboard csrf v1", hashlib.sha256).hexdigest()


def _cookie_session(request: Request) -> str | None:
    session = request.cookies.get(COOKIE)
    if session and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "").encode("latin-1")
        if not hmac.compare_digest(sent, csrf_token(session).encode()):
            raise _unauthorized(
                f"a dashboard cookie authorises a change only with the page's {CSRF_HEADER} header; "
                "other clients send 'Authorization: Bearer <key>'"
            )
    return session


def require(scope: str, *, cookie: bool = False) -> Callable[..., Principal]:
    """A dependency that admits keys holding ``scope`` (admin implies operate).

    ``cookie=True`` also admits the dashboard's cookie: as it is on GET, and on
    other methods only with the CSRF header (see the module's docstring).
    """

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = _bearer,
    ) -> Principal:
        key = credentials.credentials if credentials is not None else None
        ctx, address = context_of(request), client_address(request)
        session = _cookie_session(request) if key is None and cookie else None
        if session:
            principal = authenticate_session(ctx, session, scope, address)
        else:
            principal = authenticate(ctx, key, scope, address)
        page_id = request.path_params.get("page_id")
        if page_id is not None:
            principal.check_page(page_id)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency
