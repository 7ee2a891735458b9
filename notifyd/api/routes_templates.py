"""Page templates (admin): upload with validation, read back, reset, and preview a sample."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from notifyd.api.auth import require
from notifyd.api.context import context_of
from notifyd.api.problems import ProblemError, documented
from notifyd.selfservice.pages import Locale, PageConfigRepo
from notifyd.templates.engine import MAX_TEMPLATE_CHARS, PARTS, TemplateFailure, builtin_source, render
from notifyd.templates.sample import VARIABLES, sample_context
from notifyd.templates.store import PageTemplates, TemplateRejected, validate

router = APIRouter(tags=["templates"])


class _ChannelConvertor(Convertor[str]):
    """Only the channels that have templates: ``sms:preview`` is not a channel, so a PUT there
    is a 405 (the preview takes POST), not a 422 about a channel named "sms:preview"."""

    regex = "email|sms|slack"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("template_channel", _ChannelConvertor())

PageIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
ChannelPath = Annotated[Literal["email", "sms", "slack"], Path()]
Source = Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS, pattern=r"\S")]


class TemplateParts(BaseModel):
    """Jinja2 (sandboxed) sources; which parts a channel takes: email subject, text and html;
    sms; slack (rendering a Slack message as JSON)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"subject": "[{{ page_name }}] {{ title }} ({{ status_label }})"}]},
    )

    subject: Source | None = None
    text: Source | None = None
    html: Source | None = None
    sms: Source | None = None
    slack: Source | None = None


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"locale": "de"}]})

    #: Sources to preview; absent parts use the page's saved ones, then the built-in ones.
    templates: TemplateParts | None = None
    locale: Locale | None = None


def _parts(body: TemplateParts) -> dict[str, str]:
    return {k: v for k, v in body.model_dump().items() if v is not None}


def _reject(exc: TemplateRejected) -> ProblemError:
    # 400, not 422: the body is well-formed JSON of the documented shape; what it says cannot be
    # used (a part another channel has, a template that does not render). The errors name each part.
    return ProblemError(400, f"the templates cannot be used: {exc}", errors=exc.errors, kind="bad-template")


@router.put(
    "/v1/pages/{page_id}/templates/{channel:template_channel}",
    responses=documented(400, 401, 403, 413, 422),
    dependencies=[Depends(require("admin"))],
    summary="Set a page's templates for one channel; refused with the reason when they cannot render",
)
def put_templates(page_id: PageIdPath, channel: ChannelPath, body: TemplateParts, request: Request) -> Any:
    rt = context_of(request).runtime
    try:
        parts = validate(channel, _parts(body))
    except TemplateRejected as exc:
        raise _reject(exc) from None
    store = PageTemplates(rt.client, rt.keys)
    store.put(page_id, channel, parts)
    return {"page_id": page_id, "channel": channel, "templates": parts, "variables": list(VARIABLES)}


@router.get(
    "/v1/pages/{page_id}/templates/{channel:template_channel}",
    responses=documented(401, 403, 422),
    dependencies=[Depends(require("admin"))],
    summary="A page's templates for one channel, and how often each fell back to the built-in one",
)
def get_templates(page_id: PageIdPath, channel: ChannelPath, request: Request) -> Any:
    rt = context_of(request).runtime
    store = PageTemplates(rt.client, rt.keys)
    return {
        "page_id": page_id,
        "channel": channel,
        "templates": store.get(page_id, channel),
        "fallbacks": store.fallbacks(page_id, channel),
        "variables": list(VARIABLES),
    }


@router.delete(
    "/v1/pages/{page_id}/templates/{channel:template_channel}",
    status_code=204,
    response_class=Response,
    responses=documented(401, 403, 404, 422),
    dependencies=[Depends(require("admin"))],
    summary="Go back to the built-in templates for one channel",
)
def delete_templates(page_id: PageIdPath, channel: ChannelPath, request: Request) -> Response:
    rt = context_of(request).runtime
    if not PageTemplates(rt.client, rt.keys).delete(page_id, channel):
        raise ProblemError(404, f"page {page_id!r} has no {channel} templates")
    return Response(status_code=204)


@router.post(
    "/v1/pages/{page_id}/templates/{channel:template_channel}:preview",
    responses=documented(400, 401, 403, 413, 422),
    dependencies=[Depends(require("admin"))],
    summary="Render a sample incident update with these (or the saved) templates",
)
async def preview_templates(
    page_id: PageIdPath, channel: ChannelPath, body: PreviewRequest, request: Request
) -> Any:
    rt = context_of(request).runtime
    config = PageConfigRepo(rt.client, rt.keys).get(page_id)
    locale = body.locale or config.default_locale
    given = _parts(body.templates) if body.templates else {}
    if given:
        try:
            await run_in_threadpool(validate, channel, given)
        except TemplateRejected as exc:
            raise _reject(exc) from None
    saved = PageTemplates(rt.client, rt.keys).get(page_id, channel)
    context = sample_context(locale, config, page_id=page_id, page_name=config.display_name(page_id))
    rendered: dict[str, str] = {}
    for part in PARTS[channel]:
        source = given.get(part) or saved.get(part) or builtin_source(part)
        try:
            rendered[part] = await run_in_threadpool(render, part, source, context, locale)
        except TemplateFailure as exc:
            raise _reject(TemplateRejected([(part, str(exc))])) from None
    return {"page_id": page_id, "channel": channel, "locale": locale, "rendered": rendered}
