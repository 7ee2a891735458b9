"""GET /status/{page_id}: the public status page that notifications link to. No key.

It shows what a status page shows anyone: components and their status, open incidents and
their public timeline. Nothing about subscribers, deliveries, event ids or the store's clocks.
It is read-only and cacheable for a short while, so a link in a mass notification that
everyone opens at once costs one render per cache period, not one per reader.
"""

from __future__ import annotations

import html
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from notifyd.api.context import context_of
from notifyd.api.problems import ProblemError, documented

router = APIRouter(tags=["status page"])

#: Shared caches and browsers may keep the page this long.
CACHE_CONTROL = "public, max-age=30"
PageIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


def public_view(status: dict[str, Any]) -> dict[str, Any]:
    """The store's page view, without what only operators see (clocks, nodes, event ids)."""
    return {
        "page_id": status["page_id"],
        "components": [
            {"id": c["id"], "name": c["name"], "status": c["status"]} for c in status["components"]
        ],
        "open_incidents": [
            {
                "id": i["id"],
                "title": i["title"],
                "status": i["status"],
                "impact": i["impact"],
                "components": list(i["components"]),
                "updates": [
                    {"status": t["status"], "message": t["message"], "at": t["at"]} for t in i["timeline"]
                ],
            }
            for i in status["open_incidents"]
        ],
    }


PAGE = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title} status</title>
<body style="font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem">
<h1>{title}</h1><p><b>{summary}</b></p>{incidents}<h2>Components</h2><ul>{components}</ul>
<p><a href="{subscribe}">Subscribe to updates</a></p></body></html>"""


def _label(value: Any) -> str:
    return html.escape(str(value or "").replace("_", " "))


def render_html(view: dict[str, Any]) -> str:
    incidents = "".join(
        f"<section><h2>{html.escape(str(i['title']))}</h2><p>{_label(i['status'])} · impact "
        f"{_label(i['impact'])}</p><ul>"
        + "".join(
            f"<li><time>{html.escape(str(u['at']))}</time> {_label(u['status'])}: "
            f"{html.escape(str(u['message'] or ''))}</li>"
            for u in reversed(i["updates"])
        )
        + "</ul>"
        # Self-service: follow this one incident until it resolves (notifyd/selfservice/).
        + f'<p><a href="{html.escape(_subscribe_url(view["page_id"], i["id"]))}">Follow this incident</a></p>'
        + "</section>"
        for i in view["open_incidents"]
    )
    components = "".join(
        f"<li>{html.escape(str(c['name'] or c['id']))}: {_label(c['status'])}</li>"
        for c in view["components"]
    )
    operational = all(c["status"] == "operational" for c in view["components"])
    summary = (
        "All systems operational"
        if operational and not view["open_incidents"]
        else "Some systems are affected"
    )
    return PAGE.format(
        title=html.escape(view["page_id"]),
        summary=summary,
        incidents=incidents,
        components=components,
        subscribe=html.escape(_subscribe_url(view["page_id"])),
    )


def _subscribe_url(page_id: str, incident_id: str | None = None) -> str:
    """The sign-up form (relative: the page is served by the same API), for one incident or all."""
    url = f"/status/{quote(page_id, safe='')}/subscribe"
    return url + (f"?incident={quote(str(incident_id), safe='')}" if incident_id is not None else "")


@router.get(
    "/status/{page_id}",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}, "application/json": {"schema": {"type": "object"}}}},
        **documented(404, 422, 503),
    },
    summary="The public status page (no key): HTML, or JSON with ?format=json",
)
def status_page(
    page_id: PageIdPath,
    request: Request,
    format: Annotated[Literal["html", "json"], Query(description="html (default) or json")] = "html",
) -> Response:
    store = context_of(request).store
    if store is None:
        raise ProblemError(503, "status store not loaded", kind="store-unavailable")
    status = store.page_status(page_id)
    if not status["components"] and not status["open_incidents"]:
        raise ProblemError(404, f"no status page {page_id!r}")
    view = public_view(status)
    headers = {"Cache-Control": CACHE_CONTROL}
    if format == "json":
        return JSONResponse(view, headers=headers)
    return HTMLResponse(render_html(view), headers=headers)
