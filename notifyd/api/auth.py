"""Bearer-key authentication and scopes, as FastAPI dependencies.

A missing or unknown key is a 401 (with ``WWW-Authenticate: Bearer``); a
known key without the scope is a 403. Keys are looked up by their SHA-256
(see :mod:`notifyd.api.keystore`); the key itself is never stored, logged or
echoed. Only the dashboard's GET routes also accept the key from a cookie:
a cookie is sent by the browser on its own, so accepting it on POST routes
would invite cross-site request forgery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notifyd.api.context import ApiContext, context_of
from notifyd.api.keystore import hash_key
from notifyd.api.problems import ProblemError

COOKIE = "notifyd_key"

#: Documents the scheme in OpenAPI; we check the header ourselves (auto_error=False).
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
_bearer = Security(bearer_scheme)


@dataclass(frozen=True, slots=True)
class Principal:
    #: A prefix of the key's SHA-256: enough to tell keys apart in rate limits, useless to an attacker.
    key_id: str
    scopes: frozenset[str]


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, headers={"WWW-Authenticate": "Bearer"}, kind="unauthorized")


def authenticate(ctx: ApiContext, key: str | None, scope: str) -> Principal:
    if not key:
        raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
    scopes = ctx.keystore.scopes_for(key)
    if scopes is None:
        raise _unauthorized("unknown API key")
    if scope not in scopes:
        raise ProblemError(403, f"this key lacks the {scope!r} scope", kind="forbidden")
    return Principal(hash_key(key)[:16], scopes)


def require(scope: str, *, cookie: bool = False) -> Callable[..., Principal]:
    """A dependency that admits keys holding ``scope`` (admin implies operate)."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = _bearer,
    ) -> Principal:
        key = credentials.credentials if credentials is not None else None
        if key is None and cookie:
            key = request.cookies.get(COOKIE)
        return authenticate(context_of(request), key, scope)

    dependency.__name__ = f"require_{scope}"
    return dependency
