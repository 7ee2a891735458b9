"""Public self-service routes: sign up, confirm, the Twilio inbound webhook, and page settings.

No key is needed for the public ones; each answers the same whatever the address's
state, so nobody can learn from them who is subscribed.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape as xml_escape

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response

from notifyd.api.auth import require
from notifyd.api.context import ApiContext, context_of
from notifyd.api.problems import ProblemError, documented
from notifyd.api.routes_events import parse_json_body
from notifyd.selfservice import captcha, signing, signup, web
from notifyd.selfservice.optin import NotPending
from notifyd.selfservice.pages import PageConfig
from notifyd.state import audit

router = APIRouter(tags=["self-service"])

PageIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
TokenQuery = Annotated[str, Query(min_length=1, max_length=512)]
ACCEPTED_TEXT = (
    "If the address can receive messages, a confirmation is on its way. "
    "Nothing will be sent until it is confirmed."
)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _admit(ctx: ApiContext, request: Request, token: str | None) -> None:
    """The per-address rate limit, then the CAPTCHA hook."""
    wait = ctx.selfservice.limiter.hit(f"addr:{client_address(request)}")
    if wait is not None:
        raise ProblemError(
            429,
            "too many sign-ups from this address; try again later",
            headers={"Retry-After": str(int(wait))},
            kind="rate-limited",
        )
    if not captcha.passes(ctx.selfservice.captcha, token, client_address(request)):
        raise ProblemError(
            400, "the CAPTCHA was not solved", errors=[("captcha_token", "not valid")], kind="captcha"
        )


def _start(ctx: ApiContext, page_id: str, data: dict[str, Any], source: str) -> signup.Signup:
    config = ctx.selfservice.pages.get(page_id)
    checked = signup.check(data, allow_private=ctx.runtime.settings.allow_private_targets)
    channel = checked.subscriber["channel"]
    if channel not in config.public_channels:
        raise ProblemError(
            403,
            f"this page does not take {channel} sign-ups",
            errors=[("channel", "not offered")],
            kind="channel-not-offered",
        )
    if config.needs_confirmation(channel):
        ctx.selfservice.optin.start(page_id, checked.subscriber, checked.prefs, source=source)
    else:
        sub = ctx.selfservice.optin.activate(page_id, checked.subscriber, checked.prefs)
        ctx.selfservice.optin.record(
            page_id,
            "subscribed",
            subscriber=sub.id,
            channel=channel,
            via=source,
            confirmed="no-double-opt-in",
        )
    return checked


@router.post(
    "/v1/pages/{page_id}/subscribe",
    status_code=202,
    responses={**documented(400, 403, 413, 422, 429)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SignUp"}}},
        }
    },
    summary="Sign up for a page's updates; a confirmation follows (double opt-in)",
)
async def subscribe(page_id: PageIdPath, request: Request) -> JSONResponse:
    """Answers 202 in every case that validates, subscribed already or not: the answer never says."""
    ctx = context_of(request)
    data = parse_json_body(await request.body())
    if not isinstance(data, dict):
        raise ProblemError(422, "body: a sign-up is a JSON object", errors=[("body", "a JSON object")])
    if data.get("incident") == "":
        # The HTML form sends an empty field for "no incident"; a JSON body must leave it out.
        raise ProblemError(422, "incident: an incident id, or no field", errors=[("incident", "empty")])
    await run_in_threadpool(_admit, ctx, request, data.get("captcha_token"))
    try:
        checked = await run_in_threadpool(_start, ctx, page_id, data, "public-api")
    except signup.SignupError as exc:
        field = str(exc).split(":", 1)[0]
        raise ProblemError(422, str(exc), errors=[(field, str(exc))], kind="invalid-input") from None
    body: dict[str, Any] = {"page_id": page_id, "status": "pending", "detail": ACCEPTED_TEXT}
    if checked.generated_secret:
        body["secret"] = checked.generated_secret
    return JSONResponse(body, status_code=202)


# -- the HTML form --------------------------------------------------------------------------


def _form_page(
    ctx: ApiContext,
    page_id: str,
    config: PageConfig,
    values: dict[str, Any],
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    components = []
    if ctx.store is not None:
        try:
            components = list(ctx.store.page_status(page_id).get("components", []))
        except Exception:  # noqa: BLE001 - the form works without the component list
            components = []
    html = web.render(
        "subscribe.html",
        page_id=page_id,
        config=config,
        locale=values.get("locale"),
        action=f"/status/{quote(page_id, safe='')}/subscribe",
        channels=config.public_channels,
        channel=values.get("channel", "email"),
        target=values.get("target", ""),
        incident=values.get("incident"),
        components=components,
        error=error,
        captcha=ctx.selfservice.captcha is not None,
    )
    return HTMLResponse(html, status_code=status)


@router.get("/status/{page_id}/subscribe", response_class=HTMLResponse, include_in_schema=False)
def subscribe_form(
    page_id: PageIdPath,
    request: Request,
    incident: Annotated[str | None, Query(max_length=128)] = None,
    locale: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    ctx = context_of(request)
    values = {"incident": incident, "locale": locale}
    return _form_page(ctx, page_id, ctx.selfservice.pages.get(page_id), values)


@router.post("/status/{page_id}/subscribe", response_class=HTMLResponse, include_in_schema=False)
async def subscribe_form_post(page_id: PageIdPath, request: Request) -> HTMLResponse:
    ctx = context_of(request)
    pairs = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key == "components":
            data.setdefault("components", []).append(value)
        elif value != "":
            data[key] = value
    config = await run_in_threadpool(ctx.selfservice.pages.get, page_id)
    locale = data.get("locale")
    try:
        await run_in_threadpool(_admit, ctx, request, data.get("captcha_token"))
        await run_in_threadpool(_start, ctx, page_id, data, "public-form")
    except ProblemError as exc:
        return _form_page(ctx, page_id, config, data, web.gettext(locale, exc.detail), exc.status)
    except signup.SignupError as exc:
        return _form_page(ctx, page_id, config, data, str(exc), 422)
    html = web.message(
        page_id=page_id,
        config=config,
        locale=locale,
        heading="Check your inbox",
        text=ACCEPTED_TEXT,
    )
    return HTMLResponse(html, status_code=202)


# -- confirmation ---------------------------------------------------------------------------


def _pending_id(ctx: ApiContext, page_id: str, token: str) -> str:
    try:
        return ctx.selfservice.links.verify(token, signing.CONFIRM, page_id).subject
    except signing.BadToken as exc:
        raise ProblemError(403, str(exc), kind="bad-token") from None


@router.get(
    "/v1/pages/{page_id}/confirm",
    response_class=HTMLResponse,
    responses=documented(403, 422),
    summary="The page behind a confirmation link: a button that confirms (a GET never does)",
)
def confirm_page(page_id: PageIdPath, request: Request, token: TokenQuery) -> HTMLResponse:
    ctx = context_of(request)
    _pending_id(ctx, page_id, token)
    config = ctx.selfservice.pages.get(page_id)
    pending = ctx.selfservice.optin.get(_pending_id(ctx, page_id, token))
    locale = pending.prefs.get("locale") if pending else None
    action = f"/v1/pages/{quote(page_id, safe='')}/confirm?token={quote(token, safe='')}"
    html = web.message(
        page_id=page_id,
        config=config,
        locale=locale,
        heading="Confirm your subscription",
        text="Press the button to start receiving status updates.",
        form_action=action,
        button=web.gettext(locale, "Confirm"),
    )
    return HTMLResponse(html)


@router.post(
    "/v1/pages/{page_id}/confirm",
    responses={**documented(403, 410, 413, 422), 200: {"content": {"text/html": {}}}},
    summary="Confirm a pending sign-up: it becomes an active subscriber",
)
def confirm_now(page_id: PageIdPath, request: Request, token: TokenQuery) -> Response:
    ctx = context_of(request)
    pending_id = _pending_id(ctx, page_id, token)
    try:
        sub = ctx.selfservice.optin.confirm(pending_id, via="email-link")
    except NotPending as exc:
        raise ProblemError(410, str(exc), kind="gone") from None
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"page_id": page_id, "subscriber_id": sub.id, "status": "active"})
    config = ctx.selfservice.pages.get(page_id)
    locale = ctx.selfservice.prefs.get(page_id, sub.id).locale
    html = web.message(
        page_id=page_id,
        config=config,
        locale=locale,
        heading="Subscribed",
        text="You will now receive status updates.",
        link=ctx.selfservice.links.manage_url(page_id, sub.id),
        link_text=web.gettext(locale, "Manage your subscription"),
    )
    return HTMLResponse(html)


# -- Twilio inbound SMS ---------------------------------------------------------------------


@router.post(
    "/v1/inbound/twilio/sms",
    responses={200: {"content": {"application/xml": {}}}, **documented(403, 413)},
    summary="Twilio's signed inbound SMS webhook: a YES confirms that number's pending sign-ups",
)
async def twilio_inbound(
    request: Request, x_twilio_signature: Annotated[str, Header(max_length=256)] = ""
) -> Response:
    from channels.sms_status import verify_status_callback

    ctx = context_of(request)
    settings = ctx.runtime.settings
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    params = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    url = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not verify_status_callback(url, params, x_twilio_signature, token):
        raise ProblemError(403, "the X-Twilio-Signature does not match", kind="bad-signature")
    confirmed = await run_in_threadpool(
        ctx.selfservice.optin.confirm_sms_reply, params.get("From", ""), params.get("Body", "")
    )
    reply = ""
    if confirmed:
        locale = ctx.selfservice.prefs.get(confirmed[0].page_id, confirmed[0].id).locale
        text = web.gettext(locale, "Subscribed. Reply STOP to unsubscribe.")
        reply = f"<Message>{xml_escape(text)}</Message>"
    return Response(f"<Response>{reply}</Response>", media_type="application/xml")


# -- page settings and the audit trail (admin) ---------------------------------------------


@router.get(
    "/v1/pages/{page_id}/self-service",
    response_model=PageConfig,
    responses=documented(401, 403, 422),
    dependencies=[Depends(require("admin"))],
    summary="A page's self-service settings",
)
def get_page_config(page_id: PageIdPath, request: Request) -> Any:
    return context_of(request).selfservice.pages.get(page_id)


@router.put(
    "/v1/pages/{page_id}/self-service",
    response_model=PageConfig,
    responses=documented(400, 401, 403, 413, 422),
    dependencies=[Depends(require("admin"))],
    summary="Set a page's double opt-in, languages and branding",
)
def put_page_config(page_id: PageIdPath, config: PageConfig, request: Request) -> Any:
    context_of(request).selfservice.pages.put(page_id, config)
    return config


@router.get(
    "/v1/pages/{page_id}/audit",
    responses=documented(401, 403, 422),
    dependencies=[Depends(require("admin"))],
    summary="The page's subscriber audit trail, newest first",
)
def page_audit(
    page_id: PageIdPath, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    rt = context_of(request).runtime
    return {"page_id": page_id, "items": audit.recent(rt.client, rt.keys, page_id, limit=limit)}
