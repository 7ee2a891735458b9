"""Page status, one-click unsubscribe, store replication and provider callbacks."""

from __future__ import annotations

import contextlib
import html
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response

from notifyd import unsubscribe
from notifyd.api.auth import Principal, require
from notifyd.api.context import ApiContext, context_of
from notifyd.api.metrics import SYNC_REFUSED
from notifyd.api.problems import ProblemError, documented
from notifyd.api.schemas import PageStatus, Unsubscribed
from notifyd.api.sync_body import read_sync_message
from notifyd.state.sealing import SealError
from notifyd.state.subscribers import StoredSubscriber

router = APIRouter()

PageIdPath = Annotated[str, Path(min_length=1, max_length=128)]
SubscriberQuery = Annotated[str, Query(min_length=1, max_length=128)]
TokenQuery = Annotated[str, Query(min_length=1, max_length=64)]


def _store(request: Request) -> Any:
    store = context_of(request).store
    if store is None:
        raise ProblemError(503, "status store not loaded", kind="store-unavailable")
    return store


@router.get(
    "/v1/pages/{page_id}/status",
    response_model=PageStatus,
    responses=documented(401, 403, 422, 503),
    dependencies=[Depends(require("operate"))],
    tags=["pages"],
    summary="The CRDT store's merged state of a page",
)
def page_status(page_id: PageIdPath, request: Request) -> Any:
    status: dict[str, Any] = _store(request).page_status(page_id)
    return status


# -- one-click unsubscribe (RFC 8058) ---------------------------------------------------------


def _subscriber(ctx: ApiContext, page_id: str, subscriber_id: str, token: str) -> StoredSubscriber:
    """The subscriber the link names, once the token checks out for it and its current target.

    A removed subscriber has no target left to check a token against: its link is refused,
    as is a link sent to an address the subscriber has since left.
    """
    sub = ctx.runtime.subscribers.get(page_id, subscriber_id)
    target = ""
    if sub is not None and not sub.removed:
        with contextlib.suppress(SealError):  # a target that does not open matches no token
            target = ctx.runtime.subscribers.target_of(sub)
    try:
        unsubscribe.verify(ctx.runtime.link_keys, page_id, subscriber_id, target, token)
    except unsubscribe.BadLink as exc:
        raise ProblemError(403, str(exc), kind="bad-token") from None
    if sub is None or sub.removed:
        raise ProblemError(403, "this unsubscribe link is not valid", kind="bad-token")
    return sub


def _unsubscribe(ctx: ApiContext, page_id: str, subscriber_id: str, token: str) -> None:
    sub = _subscriber(ctx, page_id, subscriber_id, token)
    # Already disabled: the link still answers success, so it can be clicked twice.
    ctx.runtime.subscribers.disable(page_id, sub.seq, "unsubscribed")


CONFIRM_PAGE = """<!doctype html><meta charset="utf-8"><title>Unsubscribe</title>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto">
<h1>Unsubscribe</h1><p>Stop status notifications from <b>{page}</b> to this address?</p>
<form method="post" action="{action}"><button type="submit">Unsubscribe</button></form></body>"""
DONE_PAGE = """<!doctype html><meta charset="utf-8"><title>Unsubscribed</title>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto">
<h1>Unsubscribed</h1><p>You will get no more notifications from <b>{page}</b>.</p></body>"""


@router.get(
    "/v1/pages/{page_id}/unsubscribe",
    response_class=HTMLResponse,
    responses=documented(403, 422),
    tags=["unsubscribe"],
    summary="The confirmation page behind an email's unsubscribe link",
)
def unsubscribe_page(
    page_id: PageIdPath, request: Request, subscriber: SubscriberQuery, token: TokenQuery
) -> HTMLResponse:
    """Shows a button that POSTs; a GET never unsubscribes, because mail scanners open links."""
    _subscriber(context_of(request), page_id, subscriber, token)
    action = (
        f"/v1/pages/{quote(page_id, safe='')}/unsubscribe"
        f"?subscriber={quote(subscriber, safe='')}&token={quote(token, safe='')}"
    )
    return HTMLResponse(CONFIRM_PAGE.format(page=html.escape(page_id), action=html.escape(action)))


@router.post(
    "/v1/pages/{page_id}/unsubscribe",
    response_model=Unsubscribed,
    responses={**documented(403, 413, 422), 200: {"content": {"text/html": {}}}},
    tags=["unsubscribe"],
    summary="One-click unsubscribe (RFC 8058); idempotent",
)
def unsubscribe_now(
    page_id: PageIdPath, request: Request, subscriber: SubscriberQuery, token: TokenQuery
) -> Response:
    """Mail providers POST ``List-Unsubscribe=One-Click``; the confirmation page's button posts too."""
    _unsubscribe(context_of(request), page_id, subscriber, token)
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(DONE_PAGE.format(page=html.escape(page_id)))
    return JSONResponse({"page_id": page_id, "subscriber_id": subscriber, "status": "unsubscribed"})


# -- replication between regions ------------------------------------------------------------


@router.post(
    "/v1/sync",
    response_class=Response,
    responses={
        200: {"description": "The ack", "content": {"application/msgpack": {"schema": {"type": "string"}}}},
        **documented(400, 401, 403, 409, 413, 422, 501, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/msgpack": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    tags=["replication"],
    summary="Merge a peer's store delta; answers the ack",
)
async def sync(
    request: Request,
    x_notifyd_peer: Annotated[str, Header(min_length=1, max_length=64)],
    principal: Annotated[Principal, Depends(require("sync"))],
) -> Response:
    bound = principal.grant.peer
    if bound is not None and x_notifyd_peer != bound:
        # A sync key speaks for one region; it cannot feed a payload in another's name.
        SYNC_REFUSED.labels("wrong_peer").inc()
        raise ProblemError(403, "this sync key is bound to another peer", kind="forbidden")
    store = _store(request)
    receive = getattr(store, "receive_sync_message", None)
    if receive is None:
        raise ProblemError(501, "this store does not replicate", kind="not-implemented")
    from notifyd.store.errors import ClockSkewError, StoreError

    try:
        msg = await read_sync_message(request, request.app.state.sync_limit)
        ack = await run_in_threadpool(receive, x_notifyd_peer, msg)
    except ProblemError as exc:
        SYNC_REFUSED.labels("too_large" if exc.status == 413 else "bad_payload").inc()
        raise
    except ClockSkewError:
        # A register stamped, or a seen event id expiring, beyond our bounds: nothing is merged.
        SYNC_REFUSED.labels("clock_skew").inc()
        raise ProblemError(
            409, "the peer's clock is too far ahead; it will resend", kind="clock-skew"
        ) from None
    except (StoreError, ValueError):
        SYNC_REFUSED.labels("bad_payload").inc()
        raise ProblemError(400, "not a sync payload this store understands", kind="bad-payload") from None
    return Response(bytes(ack), media_type="application/msgpack")


# -- provider callbacks ---------------------------------------------------------------------


def _twilio_verifier() -> Any:
    """channels.sms's verify_status_callback, looked up per request: the SMS adapter may land later."""
    for module in ("channels.sms", "channels.sms_status"):
        try:
            found = getattr(__import__(module, fromlist=["_"]), "verify_status_callback", None)
        except ImportError:
            continue
        if found is not None:
            return found
    return None


@router.post(
    "/v1/callbacks/twilio/{delivery_id}",
    responses={200: {"content": {"application/json": {}}}, **documented(403, 404, 413, 422, 501)},
    tags=["callbacks"],
    summary="Twilio's signed message status callback",
)
async def twilio_callback(
    delivery_id: Annotated[str, Path(min_length=1, max_length=128)],
    request: Request,
    x_twilio_signature: Annotated[str, Header(max_length=256)] = "",
) -> dict[str, str]:
    verify = _twilio_verifier()
    if verify is None:
        raise ProblemError(501, "SMS status callbacks are not part of this build", kind="not-implemented")
    settings = context_of(request).runtime.settings
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    params = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    # Twilio signs the URL it called, which is the public one, not what a proxy forwarded to us.
    url = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not verify(url, params, x_twilio_signature, token):
        raise ProblemError(403, "the X-Twilio-Signature does not match", kind="bad-signature")
    from channels.base import OutcomeKind
    from channels.sms_status import callback_outcome
    from notifyd.pipeline import provider_reports

    # The signature covers the query, so these ids are the ones the SMS adapter put there.
    event_id, subscriber_id = request.query_params.get("event"), request.query_params.get("subscriber")
    rt = context_of(request).runtime
    try:
        if not event_id or not subscriber_id:
            raise provider_reports.UnknownDelivery("the callback URL has no event and subscriber")
        ref = await run_in_threadpool(
            provider_reports.locate_delivery, rt, event_id, subscriber_id, "sms", delivery_id
        )
        outcome = callback_outcome(params)
        if outcome is None or outcome.kind is not OutcomeKind.permanent:
            return {"delivery_id": delivery_id, "status": "received"}
        await run_in_threadpool(
            provider_reports.provider_failed,
            rt,
            ref,
            subscriber_id,
            reason=outcome.permanent_reason,
            error=outcome.reason or "undelivered",
        )
    except provider_reports.UnknownDelivery as exc:
        raise ProblemError(404, str(exc), kind="not-found") from None
    return {"delivery_id": delivery_id, "status": "failed"}
