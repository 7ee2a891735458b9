"""Page templates (admin): upload with validation, read back, reset, and preview a sample.

One set of routes per channel (``/templates/email``, ``/templates/sms``, ``/templates/slack``),
each with a body that lists exactly that channel's parts, so the schema says what is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from notifyd.api.auth import require
from notifyd.api.context import context_of
from notifyd.api.problems import ProblemError, documented
from notifyd.selfservice.pages import Locale, PageConfigRepo
from notifyd.templates.engine import MAX_TEMPLATE_CHARS, PARTS, TemplateFailure, builtin_source, render
from notifyd.templates.sample import VARIABLES, sample_context
from notifyd.templates.store import PageTemplates, TemplateRejected, validate

router = APIRouter(tags=["templates"])

PageIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
Source = Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS, pattern=r"\S")]


class EmailTemplates(BaseModel):
    """Jinja2 sources (sandboxed); ``html`` autoescapes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"subject": "[{{ page_name }}] {{ title }} ({{ status_label }})"}]},
    )
    subject: Source | None = None
    text: Source | None = None
    html: Source | None = None


class SmsTemplates(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"sms": "{{ page_name }}: {{ title }} {{ link }}"}]}
    )
    sms: Source | None = None


class SlackTemplates(BaseModel):
    """Renders a Slack message as JSON (``text``, ``blocks`` or ``attachments``)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"slack": '{"text": {{ title | tojson }}}'}]}
    )
    slack: Source | None = None


MODELS: dict[str, type[BaseModel]] = {"email": EmailTemplates, "sms": SmsTemplates, "slack": SlackTemplates}


def _parts(body: BaseModel | None) -> dict[str, str]:
    return {k: v for k, v in body.model_dump().items() if v is not None} if body is not None else {}


def _reject(exc: TemplateRejected) -> ProblemError:
    # 400, not 422: the body has the documented shape; what it says cannot be used (a template
    # that does not render). The errors name each part.
    return ProblemError(400, f"the templates cannot be used: {exc}", errors=exc.errors, kind="bad-template")


def _put(channel: str, page_id: str, body: BaseModel, request: Request) -> Any:
    rt = context_of(request).runtime
    if not _parts(body):
        # No part given: the page goes back to the built-in templates, as a DELETE does.
        PageTemplates(rt.client, rt.keys).delete(page_id, channel)
        return {"page_id": page_id, "channel": channel, "templates": {}, "variables": list(VARIABLES)}
    try:
        parts = validate(channel, _parts(body))
    except TemplateRejected as exc:
        raise _reject(exc) from None
    PageTemplates(rt.client, rt.keys).put(page_id, channel, parts)
    return {"page_id": page_id, "channel": channel, "templates": parts, "variables": list(VARIABLES)}


def _get(channel: str, page_id: str, request: Request) -> Any:
    rt = context_of(request).runtime
    store = PageTemplates(rt.client, rt.keys)
    return {
        "page_id": page_id,
        "channel": channel,
        "templates": store.get(page_id, channel),
        "fallbacks": store.fallbacks(page_id, channel),
        "variables": list(VARIABLES),
    }


def _delete(channel: str, page_id: str, request: Request) -> Response:
    rt = context_of(request).runtime
    if not PageTemplates(rt.client, rt.keys).delete(page_id, channel):
        raise ProblemError(404, f"page {page_id!r} has no {channel} templates")
    return Response(status_code=204)


async def _preview(
    channel: str, page_id: str, given_body: BaseModel | None, locale: str | None, request: Request
) -> Any:
    rt = context_of(request).runtime
    config = PageConfigRepo(rt.client, rt.keys).get(page_id)
    lang = locale or config.default_locale
    given = _parts(given_body)
    if given:
        try:
            await run_in_threadpool(validate, channel, given)
        except TemplateRejected as exc:
            raise _reject(exc) from None
    saved = PageTemplates(rt.client, rt.keys).get(page_id, channel)
    context = sample_context(lang, config, page_id=page_id, page_name=config.display_name(page_id))
    rendered: dict[str, str] = {}
    for part in PARTS[channel]:
        source = given.get(part) or saved.get(part) or builtin_source(part)
        try:
            rendered[part] = await run_in_threadpool(render, part, source, context, lang)
        except TemplateFailure as exc:
            raise _reject(TemplateRejected([(part, str(exc))])) from None
    return {"page_id": page_id, "channel": channel, "locale": lang, "rendered": rendered}


def _register(channel: str, model: type[BaseModel]) -> None:
    base = f"/v1/pages/{{page_id}}/templates/{channel}"
    title = channel.title() if channel != "sms" else "Sms"

    class Preview(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"locale": "de"}]})
        #: Sources to preview; absent parts use the page's saved ones, then the built-in ones.
        templates: model | None = None  # type: ignore[valid-type]
        locale: Locale | None = None

    Preview.__name__ = Preview.__qualname__ = f"{title}TemplatePreview"

    def put(page_id: PageIdPath, request: Request, body: model) -> Any:  # type: ignore[valid-type]
        return _put(channel, page_id, body, request)

    def get(page_id: PageIdPath, request: Request) -> Any:
        return _get(channel, page_id, request)

    def delete(page_id: PageIdPath, request: Request) -> Response:
        return _delete(channel, page_id, request)

    async def preview(page_id: PageIdPath, request: Request, body: Preview) -> Any:
        return await _preview(channel, page_id, body.templates, body.locale, request)

    # Annotations are strings under ``from __future__ import annotations``; these two name
    # classes made in this function, which FastAPI cannot find in the module: give it them.
    put.__annotations__["body"] = model
    preview.__annotations__["body"] = Preview
    admin = [Depends(require("admin"))]
    named: list[tuple[Callable[..., Any], str]] = [
        (put, f"put{title}Templates"),
        (get, f"get{title}Templates"),
        (delete, f"delete{title}Templates"),
        (preview, f"preview{title}Templates"),
    ]
    for fn, name in named:
        fn.__name__ = name
    router.add_api_route(
        base,
        put,
        methods=["PUT"],
        dependencies=admin,
        responses=documented(400, 401, 403, 413, 422),
        summary=f"Set a page's {channel} templates; refused with the reason when they cannot render",
        operation_id=f"put{title}Templates",
    )
    router.add_api_route(
        base,
        get,
        methods=["GET"],
        dependencies=admin,
        responses=documented(401, 403, 422),
        summary=f"A page's {channel} templates, and how often each part fell back to the built-in one",
        operation_id=f"get{title}Templates",
    )
    router.add_api_route(
        base,
        delete,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        dependencies=admin,
        responses=documented(401, 403, 404, 422),
        summary=f"Go back to the built-in {channel} templates",
        operation_id=f"delete{title}Templates",
    )
    router.add_api_route(
        base + ":preview",
        preview,
        methods=["POST"],
        dependencies=admin,
        responses=documented(400, 401, 403, 413, 422),
        summary=f"Render a sample incident update with these (or the saved) {channel} templates",
        operation_id=f"preview{title}Templates",
    )


for _channel, _model in MODELS.items():
    _register(_channel, _model)
