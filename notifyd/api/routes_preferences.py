"""The preference page behind every notification's signed "manage subscription" link.

Server-rendered; it works without JavaScript (plain form posts), and a few lines of
script save without a reload when they can. The token in the link is the only
credential: it names the page and the subscriber and expires (``manage_link_ttl_s``).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response

from notifyd.api.context import ApiContext, context_of
from notifyd.api.problems import ProblemError
from notifyd.models import QuietHours
from notifyd.preferences import EVENT_KINDS, IMPACT_RANK, Preferences, defaults_for
from notifyd.selfservice import signing, web
from notifyd.state.subscribers import StoredSubscriber, describe_validation_error

router = APIRouter(tags=["self-service"])

PageIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
KIND_LABELS = {"incident": "Incidents", "maintenance": "Maintenance", "component": "Component changes"}
IMPACT_LABELS = {
    "none": "Everything",
    "minor": "Minor and above",
    "major": "Major and above",
    "critical": "Critical only",
}


def _subscriber(ctx: ApiContext, page_id: str, token: str) -> StoredSubscriber:
    try:
        claims = ctx.selfservice.links.verify(token, signing.MANAGE, page_id)
    except signing.BadToken as exc:
        raise ProblemError(403, str(exc), kind="bad-token") from None
    sub = ctx.runtime.subscribers.get(page_id, claims.subject)
    if sub is None or sub.removed:
        raise ProblemError(404, "this subscription no longer exists", kind="not-found")
    return sub


def _page(
    ctx: ApiContext,
    page_id: str,
    token: str,
    sub: StoredSubscriber,
    *,
    saved: bool = False,
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    config = ctx.selfservice.pages.get(page_id)
    prefs = ctx.selfservice.prefs.get(page_id, sub.id)
    chosen = sub.prefs  # the record's delivery preferences (notifyd/preferences.py)
    locale = prefs.locale or config.default_locale
    components: list[dict[str, Any]] = []
    if ctx.store is not None:
        try:
            components = list(ctx.store.page_status(page_id).get("components", []))
        except Exception:  # noqa: BLE001 - the page works without the store's list
            components = []
    known = {c.get("id") for c in components}
    components += [{"id": c, "name": c} for c in sorted(sub.components or ()) if c not in known]

    def _(text: str) -> str:
        return web.gettext(locale, text)

    html = web.render(
        "preferences.html",
        page_id=page_id,
        config=config,
        locale=locale,
        token=token,
        action=f"/status/{quote(page_id, safe='')}/preferences",
        unsubscribe_action=f"/status/{quote(page_id, safe='')}/preferences/unsubscribe",
        target=ctx.runtime.subscribers.shown_target(sub),
        disabled=bool(sub.disabled),
        saved=saved,
        error=error,
        components=components,
        chosen_components=set(sub.components or ()),
        kinds=[(k, _(KIND_LABELS[k])) for k in EVENT_KINDS],
        chosen_kinds=set(chosen.event_types or defaults_for(sub.channel).event_types),
        impacts=[(i, _(IMPACT_LABELS[i])) for i in IMPACT_RANK],
        min_impact=chosen.min_impact or "none",
        quiet=chosen.quiet_hours.public() if chosen.quiet_hours else None,
    )
    return HTMLResponse(html, status_code=status)


@router.get("/status/{page_id}/preferences", response_class=HTMLResponse, include_in_schema=False)
def preferences_page(
    page_id: PageIdPath, request: Request, token: Annotated[str, Query(min_length=1, max_length=512)]
) -> HTMLResponse:
    ctx = context_of(request)
    return _page(ctx, page_id, token, _subscriber(ctx, page_id, token))


def _form(raw: bytes) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def _save(
    ctx: ApiContext, page_id: str, sub: StoredSubscriber, single: dict[str, str], multi: dict[str, list[str]]
) -> None:
    kinds = [k for k in multi.get("event_types", []) if k in EVENT_KINDS]
    min_impact = single.get("min_impact", "none")
    if min_impact not in IMPACT_RANK:
        min_impact = "none"
    quiet = None
    if single.get("quiet") == "on":
        quiet = QuietHours.model_validate(
            {
                "start": single.get("quiet_start", "22:00"),
                "end": single.get("quiet_end", "07:00"),
                "tz": single.get("quiet_tz") or "UTC",
                "allow_critical": single.get("quiet_allow_critical") == "on",
            }
        ).model_dump()
    defaults = defaults_for(sub.channel)
    prefs = Preferences.from_fields(
        # Choosing what the channel hears anyway stores nothing: the default may change.
        event_types=None if set(kinds) == set(defaults.event_types) or not kinds else kinds,
        min_impact=None if min_impact == "none" else min_impact,
        incident_phases=sorted(sub.prefs.incident_phases) if sub.prefs.incident_phases is not None else None,
        quiet_hours=quiet,
    )
    ctx.selfservice.prefs.update(page_id, sub.id, {"locale": single.get("locale") or None})
    chosen = multi.get("components", [])
    ctx.runtime.subscribers.update_choices(page_id, sub.id, components=chosen or None, prefs=prefs)
    ctx.selfservice.optin.record(
        page_id, "preferences_changed", subscriber=sub.id, channel=sub.channel, via="preference-page"
    )


@router.post("/status/{page_id}/preferences", include_in_schema=False)
async def save_preferences(page_id: PageIdPath, request: Request) -> Response:
    ctx = context_of(request)
    single, multi = _form(await request.body())
    token = single.get("token", "")
    sub = await run_in_threadpool(_subscriber, ctx, page_id, token)
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        await run_in_threadpool(_save, ctx, page_id, sub, single, multi)
    except ValidationError as exc:
        message = describe_validation_error(exc)
        if wants_json:
            return JSONResponse({"detail": message}, status_code=422)
        return _page(ctx, page_id, token, sub, error=message, status=422)
    if wants_json:
        locale = ctx.selfservice.prefs.get(page_id, sub.id).locale
        return JSONResponse(
            {"status": "saved", "message": web.gettext(locale, "Your preferences are saved.")}
        )
    return _page(ctx, page_id, token, await run_in_threadpool(_subscriber, ctx, page_id, token), saved=True)


@router.post(
    "/status/{page_id}/preferences/unsubscribe", response_class=HTMLResponse, include_in_schema=False
)
async def unsubscribe_everything(page_id: PageIdPath, request: Request) -> HTMLResponse:
    ctx = context_of(request)
    single, _ = _form(await request.body())
    sub = await run_in_threadpool(_subscriber, ctx, page_id, single.get("token", ""))
    await run_in_threadpool(ctx.runtime.subscribers.disable, page_id, sub.seq, "unsubscribed")
    ctx.selfservice.optin.record(
        page_id, "unsubscribed", subscriber=sub.id, channel=sub.channel, via="preference-page"
    )
    config = ctx.selfservice.pages.get(page_id)
    locale = ctx.selfservice.prefs.get(page_id, sub.id).locale
    html = web.message(
        page_id=page_id,
        config=config,
        locale=locale,
        heading="Unsubscribed",
        text="You will receive no more notifications from this page.",
    )
    return HTMLResponse(html)
