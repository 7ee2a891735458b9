"""The API docs pages (/docs: Swagger UI, /redoc: ReDoc), served from the package.

FastAPI's own pages load Swagger UI and ReDoc from jsDelivr, with no integrity check, and
start them with an inline script. These pages load the same projects' files from
``notifyd/api/static/docs/`` (package data, vendored by ``tools/vendor_docs_assets.py``; see
the NOTICE file) and start them from a file too, so a docs page makes no request anywhere
else: /docs's CSP (``headers.DOCS_CSP``) allows this origin only; /redoc's also allows the
inline styles and the blob worker ReDoc makes at run time. Versions: swagger-ui-dist 5.35.0
and redoc 2.5.4, the majors FastAPI's own pages load.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from notifyd import __version__
from notifyd.api.problems import ProblemError

router = APIRouter(include_in_schema=False)

#: Where the files are served, and where they live in the package.
ASSETS_PATH = "/docs/assets"
ASSETS_DIR = "static/docs"
#: The files a docs page may load, and their media types: nothing else in the folder is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css?v={v}">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png?v={v}">
</head><body data-openapi-url="{openapi}">
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js?v={v}"></script>
<script src="{assets}/docs.js?v={v}"></script>
</body></html>"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png?v={v}">
</head><body>
<redoc spec-url="{openapi}"></redoc>
<script src="{assets}/redoc.standalone.js?v={v}"></script>
</body></html>"""


@cache
def _asset(name: str) -> bytes:
    return resources.files("notifyd.api").joinpath(f"{ASSETS_DIR}/{name}").read_bytes()


def _page(template: str, request: Request) -> HTMLResponse:
    app = request.app
    return HTMLResponse(
        template.format(
            title=html.escape(app.title),
            assets=ASSETS_PATH,
            openapi=html.escape(app.openapi_url or "/openapi.json"),
            v=html.escape(__version__),
        )
    )


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return _page(SWAGGER_PAGE, request)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _page(REDOC_PAGE, request)


@router.get(ASSETS_PATH + "/{name}")
def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ProblemError(404, f"no docs asset {name!r}")
    # The URL carries the version, so a browser may keep the file as long as it likes.
    return Response(_asset(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
