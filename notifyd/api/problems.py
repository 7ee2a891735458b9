"""Errors as RFC 9457 ``application/problem+json``, each naming the field at fault.

Every error the API answers goes through :func:`problem_response`, so no
handler can leak an exception's text (which may hold a secret) by accident:
only messages written for the client reach it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

log = logging.getLogger("notifyd.api")

PROBLEM_JSON = "application/problem+json"
#: Where the `type` URIs of our problems point; they need not resolve.
TYPE_BASE = "https://notifyd.cli.dev/problems/"


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []
    #: On a refused publish (503): what Redis kept, ``nothing``, ``event`` (queued, not confirmed
    #: durable) or ``unknown``. Publishing again with the same event_id is safe in every case.
    written: Literal["nothing", "event", "unknown"] | None = None


class ProblemError(Exception):
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        kind: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.kind = kind
        self.extra = dict(extra or {})


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Iterable[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    kind: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    slug = kind or title.lower().replace(" ", "-").replace("'", "")
    body = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": [{"field": f, "message": m} for f, m in errors],
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def field_errors(errors: Iterable[Mapping[str, Any]], *, drop_root: bool = True) -> list[tuple[str, str]]:
    """pydantic/FastAPI error dicts as (dotted field, message); ``body.``/``query.`` roots dropped."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if drop_root and loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:] or [loc[0]]
        message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        out.append((".".join(loc) or "body", message))
    return out


def from_validation_error(exc: ValidationError) -> ProblemError:
    errors = field_errors(exc.errors(include_input=False), drop_root=False)
    return ProblemError(422, _summary(errors), errors=errors, kind="invalid-input")


def _summary(errors: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{f}: {m}" for f, m in errors[:5]) or "the request is invalid"


def install(app: FastAPI) -> None:
    """Route every error through problem_response."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status, exc.detail, errors=exc.errors, headers=exc.headers, kind=exc.kind, extra=exc.extra
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # include_input is not available here; build the list from loc and msg only,
        # so the rejected value (perhaps a secret) is never echoed.
        errors = field_errors(exc.errors())
        return problem_response(422, _summary(errors), errors=errors, kind="invalid-input")

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request, headers.get("Allow", "")))
        return problem_response(exc.status_code, detail, headers=headers)

    async def on_error(request: Request, exc: Exception) -> Response:
        # Log the type and where, not the message: messages of driver errors can carry URLs with passwords.
        log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.url.path)
        return problem_response(500, "internal error; see the server log")

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_error)


def allowed_methods(request: Request, answered: str) -> list[str]:
    """Every method the OpenAPI document lists at this path, and those of the 405 itself.

    FastAPI makes one route per (path, method), and the route that answers 405
    names only its own methods; ``Allow`` must name all of them.
    """
    methods = {m.strip() for m in answered.split(",") if m.strip()}
    path = request.scope.get("path", "")
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            methods |= {m.upper() for m in operations}
    return sorted(methods)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problem documents a route may answer."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
