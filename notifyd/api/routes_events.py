"""POST /v1/events and the event read/redrive routes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from notifyd.api import deliveries
from notifyd.api.auth import Principal, require
from notifyd.api.context import ApiContext, context_of
from notifyd.api.metrics import PUBLISHED
from notifyd.api.problems import ProblemError, documented, from_validation_error
from notifyd.api.schemas import (
    ChannelName,
    DeliveryPage,
    DeliveryStatus,
    EventSummary,
    PublishAnswer,
    Redriven,
)
from notifyd.models import Event
from notifyd.publish import EventError, PublishResult
from notifyd.runtime.durability import NotDurable
from notifyd.state.tracking import AmbiguousEventId

router = APIRouter(prefix="/v1/events", tags=["events"])

OperateCookie = Annotated[Principal, Depends(require("operate", cookie=True))]
EventIdPath = Annotated[str, Path(min_length=1, max_length=128, description="The publisher's event id")]
PageQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=128,
        description="The event's page; needed only when several of the key's pages used this event id",
    ),
]


def _storage_down(exc: redis.RedisError | None = None) -> ProblemError:
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return ProblemError(
            503, "storage is full (maxmemory); nothing was accepted, try again later", kind="unavailable"
        )
    return ProblemError(503, "storage is unavailable; nothing was accepted, try again", kind="unavailable")


def not_durable_problem(exc: NotDurable) -> ProblemError:
    """503 for a publish the durability policy refused, saying what Redis kept."""
    said = {
        "nothing": "nothing was accepted",
        "event": "the event was written but is not confirmed durable",
        "unknown": "the event may or may not have been written",
    }[exc.written]
    PUBLISHED.labels("not_durable").inc()
    return ProblemError(
        503,
        f"{said}: {exc}",
        headers={"Retry-After": "1"},
        kind="not-durable",
        extra={"written": exc.written},
    )


EVENT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
}


def parse_json_body(body: bytes) -> Any:
    """The body as JSON, or a 422 that says where it broke."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        message = "is not UTF-8"
    except json.JSONDecodeError as exc:
        message = f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        message = "nests too deeply"
    raise ProblemError(422, f"body {message}", errors=[("body", message)], kind="invalid-input")


def parse_event_body(body: bytes) -> Event:
    data = parse_json_body(body)
    if not isinstance(data, dict):
        raise ProblemError(
            422, "body: an event is a JSON object", errors=[("body", "an event is a JSON object")]
        )
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def check_publishable(principal: Principal, event: Event) -> None:
    """403 when the key may not publish to the event's page, or not at its lane."""
    principal.check_page(event.page_id)
    if not principal.grant.may_publish_at(event.lane):
        cap = principal.grant.lane_cap
        raise ProblemError(
            403,
            f"this key may publish up to priority {cap!r}, and this event is {event.lane!r}; "
            "publishing to the critical and high lanes needs a key created with "
            "--max-priority (NOTIFYD_API_KEYS: key:publish/critical)",
            errors=[("priority", f"above this key's cap {cap!r}")],
            kind="forbidden",
        )


def _accept(ctx: ApiContext, principal: Principal, event: Event) -> PublishResult:
    try:
        # One budget per key and lane: a key flooding the low lane keeps its critical budget.
        retry_after = ctx.limiter.hit(f"{principal.key_id}:{event.lane}")
    except redis.RedisError as exc:
        raise _storage_down(exc) from None
    if retry_after is not None:
        raise ProblemError(
            429,
            f"this key publishes to the {event.lane} lane faster than its limit; slow down",
            headers={"Retry-After": str(int(retry_after))},
            kind="rate-limited",
        )
    try:
        return ctx.runtime.publisher.publish(event)
    except EventError as exc:
        raise ProblemError(exc.status, str(exc), errors=[("body", str(exc))], kind="invalid-event") from None
    except NotDurable as exc:
        raise not_durable_problem(exc) from None
    except redis.RedisError as exc:
        raise _storage_down(exc) from None


@router.post(
    "",
    status_code=202,
    response_model=PublishAnswer,
    responses={
        200: {"model": PublishAnswer, "description": "A duplicate event id, or a matched dedup key"},
        **documented(401, 403, 413, 422, 429, 503),
    },
    openapi_extra={"requestBody": EVENT_BODY},
    summary="Publish an event",
)
async def publish(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("publish"))],
) -> dict[str, str]:
    """Answers 202 only once Redis holds the event (and, with an AOF, once it is on disk).

    The body is read after the key is checked, so an unauthenticated caller learns nothing
    about what makes an event valid.
    """
    event = parse_event_body(await request.body())
    check_publishable(principal, event)
    result = await run_in_threadpool(_accept, context_of(request), principal, event)
    PUBLISHED.labels(result.status).inc()
    if result.status != "accepted":
        response.status_code = 200
    return result.as_dict()


def _no_event(event_id: str) -> ProblemError:
    return ProblemError(404, f"no event {event_id!r} (unknown, or older than the event id TTL)")


def _ref_or_404(request: Request, principal: Principal, event_id: str, page: str | None) -> str:
    """The ref (``keys.event_ref``) of the one event with this id that the key reaches.

    Event ids are unique per page, so one id may name events of several pages. An event of a
    page the key does not reach is a 404 like an unknown one: event ids are the publisher's, so
    a 403 would tell who else published what. Two the key reaches: 409, naming their pages.
    """
    try:
        ref = context_of(request).runtime.tracker.find(event_id, page, reaches=principal.reaches)
    except AmbiguousEventId as exc:
        pages = ", ".join(repr(page_id) for page_id in exc.pages)
        raise ProblemError(
            409,
            f"event id {event_id!r} was published to pages {pages}; name one with ?page=",
            errors=[("page", "required: several pages used this event id")],
            kind="ambiguous-event",
        ) from None
    if ref is None:
        raise _no_event(event_id)
    return ref


def _summary_or_404(
    request: Request, principal: Principal, event_id: str, page: str | None
) -> tuple[str, dict[str, Any]]:
    ref = _ref_or_404(request, principal, event_id, page)
    summary = context_of(request).runtime.tracker.summary(ref)
    if summary is None:  # expired between the two reads
        raise _no_event(event_id)
    return ref, summary


@router.get(
    "/{event_id}",
    response_model=EventSummary,
    responses=documented(401, 403, 404, 409, 422),
    summary="An event's delivery summary",
)
def get_event(
    event_id: EventIdPath, request: Request, principal: OperateCookie, page: PageQuery = None
) -> dict[str, Any]:
    return _summary_or_404(request, principal, event_id, page)[1]


@router.get(
    "/{event_id}/deliveries",
    response_model=DeliveryPage,
    responses=documented(401, 403, 404, 409, 422),
    summary="An event's deliveries, paginated",
)
def list_deliveries(
    event_id: EventIdPath,
    request: Request,
    principal: OperateCookie,
    status: DeliveryStatus | None = None,
    channel: ChannelName | None = None,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,12}$", description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page: PageQuery = None,
) -> dict[str, Any]:
    start = int(cursor) if cursor else 0
    rt = context_of(request).runtime
    info = deliveries.event_info(rt, _ref_or_404(request, principal, event_id, page))
    if info is None:
        raise _no_event(event_id)
    items, next_seq = deliveries.event_deliveries(
        rt, info, cursor=start, limit=limit, status=status, channel=channel
    )
    return {"items": items, "next_cursor": str(next_seq) if next_seq is not None else None}


@router.post(
    "/{event_id}/redrive",
    status_code=202,
    response_model=Redriven,
    responses=documented(401, 403, 404, 409, 422),
    summary="Re-send the event's failed deliveries, keeping their delivery ids",
)
def redrive(
    event_id: EventIdPath, request: Request, principal: OperateCookie, page: PageQuery = None
) -> dict[str, Any]:
    ref, _ = _summary_or_404(request, principal, event_id, page)
    count = context_of(request).redrive(ref)
    return {"event_id": event_id, "redriven": count}
