"""Subscriber management (scope admin) and a subscriber's recent deliveries (scope operate)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Annotated, Any

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from notifyd.api import deliveries
from notifyd.api.auth import Principal, require
from notifyd.api.context import context_of
from notifyd.api.problems import ProblemError, documented, from_validation_error
from notifyd.api.routes_events import parse_json_body
from notifyd.api.schemas import (
    ImportSummary,
    SubscriberDeliveries,
    SubscriberOut,
    SubscriberPage,
    subscriber_out,
)
from notifyd.models import Subscriber
from notifyd.selfservice.consent import ImportConsent
from notifyd.state.imports import ImportTally, ImportTooLong, LineCap, scan_object
from notifyd.state.subscribers import (
    AddResult,
    ConsentError,
    PageFull,
    SubscriberError,
    SubscriberRepo,
    TargetRefused,
)

router = APIRouter(tags=["subscribers"])

PageIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
SubscriberIdPath = Annotated[str, Path(min_length=1, max_length=128)]
#: The body reader hands lines to the import thread this many at a time, or fewer when they
#: reach FEED_BYTES; at most FEED_DEPTH hand-offs wait, so memory stays at a few MiB.
FEED_LINES = 1000
FEED_BYTES = 1024 * 1024
FEED_DEPTH = 4
#: One NDJSON line may not exceed this; a longer one is rejected, not buffered.
MAX_LINE_BYTES = 64 * 1024
SUBSCRIBER_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Subscriber"}}},
}


def _validate(repo: SubscriberRepo, data: Any) -> Subscriber:
    if not isinstance(data, dict):
        raise ProblemError(422, "body: a subscriber is a JSON object", errors=[("body", "a JSON object")])
    try:
        return Subscriber.model_validate(data, context={"allow_private": repo.allow_private_targets})
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _add(repo: SubscriberRepo, page_id: str, sub: Subscriber) -> AddResult:
    try:
        return repo.add(page_id, sub)
    except TargetRefused as exc:
        raise ProblemError(422, str(exc), errors=[("target", str(exc))], kind="invalid-input") from None
    except PageFull as exc:
        raise ProblemError(409, str(exc), kind="page-full") from None
    except SubscriberError as exc:
        # Conflicts: an id used by another target, or a target already subscribed under another id.
        raise ProblemError(409, str(exc), errors=[("id", str(exc))], kind="conflict") from None


@router.post(
    "/v1/pages/{page_id}/subscribers",
    status_code=201,
    response_model=SubscriberOut,
    response_model_exclude_none=True,
    responses={
        200: {"model": SubscriberOut, "description": "The same (page, channel, target) existed: updated"},
        **documented(401, 403, 409, 413, 422),
    },
    openapi_extra={"requestBody": SUBSCRIBER_BODY},
    dependencies=[Depends(require("admin"))],
    summary="Add a subscriber, or update the one with the same (channel, target)",
)
async def add_subscriber(page_id: PageIdPath, request: Request, response: Response) -> dict[str, Any]:
    """201 when created (a generated webhook secret is in this answer, and never again); 200 when updated."""
    ctx = context_of(request)
    repo = ctx.runtime.subscribers
    data = parse_json_body(await request.body())
    confirmed = data.pop("confirmed", None) if isinstance(data, dict) else None
    sub = _validate(repo, data)
    result = await run_in_threadpool(_add, repo, page_id, sub)
    if confirmed is True:
        await run_in_threadpool(
            ImportConsent(ctx.selfservice.optin, page_id).record_confirmed, result, "admin-api"
        )
    if not result.created:
        response.status_code = 200
    out = subscriber_out(repo.public(result.subscriber), result.generated_secret)
    if result.warnings:
        out["warnings"] = list(result.warnings)
    return out


async def _lines(request: Request) -> AsyncIterator[tuple[int, bytes | None]]:
    """(line number, line) from a streamed body; None for a line over MAX_LINE_BYTES.

    Linear in the body's size however it is chunked: each chunk is searched once, and the
    pieces of a line that spans chunks are joined once, when its newline arrives.
    """
    pieces: list[bytes] = []  # the line being read, when it spans chunks
    held = 0  # bytes in pieces
    number = 0
    skipping = False  # inside a too-long line, already reported: drop bytes until its newline
    async for chunk in request.stream():
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:end]
            start = end + 1
            if skipping:
                skipping = False
                continue
            line = b"".join([*pieces, piece]) if pieces else piece
            pieces, held = [], 0
            number += 1
            yield number, line
        if skipping or start == len(chunk):
            continue
        pieces.append(chunk[start:])
        held += len(chunk) - start
        if held > MAX_LINE_BYTES:
            number += 1
            yield number, None
            pieces, held, skipping = [], 0, True
    if pieces:
        yield number + 1, b"".join(pieces)


def _rows(lines: Iterable[tuple[int, bytes | None]]) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
    for number, line in lines:
        if line is None or len(line) > MAX_LINE_BYTES:
            yield number, ValueError(f"line is longer than {MAX_LINE_BYTES} bytes")
            continue
        if not line.strip():
            continue
        if line[:1] == b"{" and line[1:2] != b"\x00":  # UTF-8, as json.loads would detect it
            try:
                quick = scan_object(line.decode())
            except UnicodeDecodeError:  # json.loads decodes with surrogatepass: let it decide
                quick = None
            if quick is not None:
                yield number, quick
                continue
        try:
            parsed = json.loads(line)
        except (UnicodeDecodeError, RecursionError):
            yield number, ValueError("not valid JSON")
            continue
        except json.JSONDecodeError as exc:
            yield number, ValueError(f"not valid JSON: {exc.msg}")
            continue
        yield number, parsed if isinstance(parsed, dict) else ValueError("each line is a JSON object")


def _import_feed(
    repo: SubscriberRepo,
    page_id: str,
    feed: MemoryObjectReceiveStream[list[tuple[int, bytes | None]]],
    tally: ImportTally,
    cap: LineCap,
    consent: ImportConsent,
) -> None:
    """The import, on a worker thread, of the lines the body reader hands over until it ends."""

    def lines() -> Iterator[tuple[int, bytes | None]]:
        while True:
            try:
                chunk = anyio.from_thread.run(feed.receive)
            except anyio.EndOfStream:
                return
            yield from chunk

    try:
        for line, result in repo.import_many(page_id, consent.rows(cap(_rows(lines())))):
            tally.add(line, result)
            if isinstance(result, AddResult):
                consent.added(line, result)
    finally:
        anyio.from_thread.run_sync(feed.close)  # a reader still sending stops


@router.post(
    "/v1/pages/{page_id}/subscribers:import",
    response_model=ImportSummary,
    responses=documented(401, 403, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "description": "One subscriber object (JSON) per line; blank lines are skipped",
                    }
                }
            },
        }
    },
    dependencies=[Depends(require("admin"))],
    summary="Import subscribers from an NDJSON body, streamed",
)
async def import_subscribers(page_id: PageIdPath, request: Request) -> dict[str, Any]:
    """Each line is a subscriber object. Generated webhook secrets are not returned by an import:
    give `secret` in the line when the sender must know it."""
    rt = context_of(request).runtime
    repo = rt.subscribers
    tally = ImportTally()
    cap = LineCap(rt.settings.import_max_lines)
    consent = ImportConsent(
        context_of(request).selfservice.optin, page_id, allow_private=repo.allow_private_targets
    )
    # The body is read here while a worker thread imports what was read before: reading, parsing
    # and Redis' script overlap, and the bounded hand-off keeps memory flat for any body size.
    send, receive = anyio.create_memory_object_stream[list[tuple[int, bytes | None]]](FEED_DEPTH)
    received = False

    async def read() -> None:
        nonlocal received
        batch: list[tuple[int, bytes | None]] = []
        size = 0
        async with send:
            try:
                async for item in _lines(request):
                    received = True
                    batch.append(item)
                    size += len(item[1] or b"")
                    if len(batch) >= FEED_LINES or size >= FEED_BYTES:
                        await send.send(batch)
                        batch, size = [], 0
                if batch:
                    await send.send(batch)
            except anyio.BrokenResourceError:
                pass  # the import stopped (its line cap): what it said is the answer

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            await run_in_threadpool(_import_feed, repo, page_id, receive, tally, cap, consent)
    except BaseExceptionGroup as group:  # the task group's wrapping: answer as for the error itself
        first = group.exceptions[0]
        if isinstance(first, ImportTooLong):
            raise ProblemError(413, str(first), kind="import-too-long") from None
        raise first from None
    if not received:
        # No body at all is a mistake (a lost file, a wrong pipe), not an import of nothing.
        raise ProblemError(
            422,
            "body: send NDJSON, one subscriber object per line",
            errors=[("body", "the body is empty")],
            kind="invalid-input",
        )
    return tally.summary()


@router.get(
    "/v1/pages/{page_id}/subscribers",
    response_model=SubscriberPage,
    responses=documented(401, 403, 422),
    dependencies=[Depends(require("admin"))],
    summary="A page's subscribers, paginated",
)
def list_subscribers(
    page_id: PageIdPath,
    request: Request,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,12}$", description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    start = int(cursor) if cursor else 0
    repo = context_of(request).runtime.subscribers
    items, next_seq = repo.page(page_id, cursor=start, limit=limit)
    # Answered as is (absent fields stay absent); the model above documents the shape.
    return JSONResponse(
        {
            "items": [repo.public(s) for s in items],
            "next_cursor": str(next_seq) if next_seq is not None else None,
        }
    )


@router.delete(
    "/v1/pages/{page_id}/subscribers/{subscriber_id}",
    status_code=204,
    response_class=Response,
    responses=documented(401, 403, 404, 422),
    dependencies=[Depends(require("admin"))],
    summary="Remove a subscriber",
)
def remove_subscriber(page_id: PageIdPath, subscriber_id: SubscriberIdPath, request: Request) -> Response:
    if not context_of(request).runtime.subscribers.remove(page_id, subscriber_id):
        raise ProblemError(404, f"page {page_id!r} has no subscriber {subscriber_id!r}")
    return Response(status_code=204)


@router.post(
    "/v1/pages/{page_id}/subscribers/{subscriber_id}/reactivate",
    response_model=SubscriberOut,
    response_model_exclude_none=True,
    responses=documented(401, 403, 404, 409, 422),
    summary="Re-enable a quarantined or disabled subscriber, and clear its failure window",
)
def reactivate_subscriber(
    page_id: PageIdPath,
    subscriber_id: SubscriberIdPath,
    request: Request,
    principal: Annotated[Principal, Depends(require("admin"))],
    force: Annotated[
        bool,
        Query(
            description="Also override the subscriber's own opt-out (unsubscribed, SMS STOP, 410 Gone). "
            "Recorded in the page's audit trail with the key's id and the time."
        ),
    ] = False,
) -> Any:
    """Quarantine and invalid-target states are cleared; an opt-out only with `force=true` (else 409)."""
    from notifyd.pipeline.endpoint_health import reactivate

    rt = context_of(request).runtime
    try:
        sub = reactivate(
            rt.client,
            rt.keys.ns,
            rt.subscribers,
            page_id,
            subscriber_id,
            force=force,
            actor=f"key:{principal.key_id}",
        )
    except ConsentError as exc:
        raise ProblemError(409, str(exc), kind="opted-out") from None
    if sub is None:
        raise ProblemError(404, f"page {page_id!r} has no subscriber {subscriber_id!r}")
    return rt.subscribers.public(sub)


@router.get(
    "/v1/subscribers/{subscriber_id}/deliveries",
    response_model=SubscriberDeliveries,
    responses=documented(401, 403, 404, 409, 422),
    summary="A subscriber's deliveries in its page's latest events",
)
def subscriber_deliveries(
    subscriber_id: SubscriberIdPath,
    request: Request,
    principal: Annotated[Principal, Depends(require("operate"))],
    limit: Annotated[int, Query(ge=1, le=200, description="how many recent events to look into")] = 50,
) -> dict[str, Any]:
    rt = context_of(request).runtime
    # Another page's subscriber is as unknown as a missing one: a 403 would confirm it exists.
    found = [(page, seq) for page, seq in rt.subscribers.pages_with(subscriber_id) if principal.reaches(page)]
    if len(found) > 1:
        pages = ", ".join(p for p, _ in found[:5])
        raise ProblemError(
            409,
            f"subscriber id {subscriber_id!r} is used on several pages ({pages}); ids are unique per page: "
            f"ask /v1/pages/{{page_id}}/subscribers/{subscriber_id}/deliveries",
            kind="ambiguous-id",
        )
    return _deliveries(rt, found[0][0] if found else None, subscriber_id, limit)


def _deliveries(rt: Any, page_id: str | None, subscriber_id: str, limit: int) -> dict[str, Any]:
    seq = rt.subscribers.seq_of(page_id, subscriber_id) if page_id is not None else None
    sub = rt.subscribers.get_seq(page_id, seq) if page_id is not None and seq is not None else None
    if page_id is None or seq is None or sub is None:
        raise ProblemError(
            404, f"no subscriber {subscriber_id!r}" + (f" on page {page_id!r}" if page_id else "")
        )
    items = deliveries.subscriber_deliveries(rt, page_id, seq, sub, limit=limit)
    return {"subscriber_id": subscriber_id, "page_id": page_id, "items": items}


@router.get(
    "/v1/pages/{page_id}/subscribers/{subscriber_id}/deliveries",
    response_model=SubscriberDeliveries,
    responses=documented(401, 403, 404, 422),
    dependencies=[Depends(require("operate"))],
    summary="A page's subscriber's deliveries in the page's latest events",
)
def page_subscriber_deliveries(
    page_id: PageIdPath,
    subscriber_id: SubscriberIdPath,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200, description="how many recent events to look into")] = 50,
) -> dict[str, Any]:
    return _deliveries(context_of(request).runtime, page_id, subscriber_id, limit)
