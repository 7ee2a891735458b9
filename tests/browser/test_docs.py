"""The API docs in headless Chromium: /docs (Swagger UI) and /redoc render every operation
from files the package serves, under a CSP that allows this origin only, and the pages make
no request anywhere else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.api.conftest import Api
from tests.support.browser import Screenshots

# The generous timeout covers a first run on a fresh machine, whose setup installs chromium with apt.
pytestmark = [pytest.mark.timeout(900)]

METHODS = ("get", "put", "post", "delete", "patch")


def _operations(api: Api) -> list[tuple[str, str]]:
    with api.client(None) as http:
        paths = http.get("/openapi.json").json()["paths"]
    return [(method, path) for path, item in paths.items() for method in item if method in METHODS]


class Watch:
    """Every request a page makes, and every CSP violation and console error it reports."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda msg: msg.type == "error" and self.problems.append(msg.text))
        page.on("pageerror", lambda exc: self.problems.append(str(exc)))

    def outside(self, origin: str) -> list[str]:
        return [url for url in self.requests if not url.startswith((origin + "/", "data:", "blob:"))]


def test_swagger_ui_renders_every_operation_from_the_package_with_no_outside_request(
    start_api: Callable[..., Api], page: Any, screenshots: Screenshots
):
    api = start_api()
    operations = _operations(api)
    watch = Watch(page)
    response = page.goto(f"{api.url}/docs")
    assert response.headers["content-security-policy"].count("http") == 0
    blocks = page.locator("#swagger-ui .opblock")
    expect(blocks).to_have_count(len(operations))
    publish = page.locator('.opblock-post .opblock-summary-path[data-path="/v1/events"]')
    expect(publish).to_be_visible()
    publish.click()  # an operation opens, with its request body schema, from the same document
    expect(page.locator(".opblock-post.is-open .opblock-body")).to_be_visible()
    screenshots.take(page, "swagger-ui")
    assert watch.outside(api.url) == []
    assert f"{api.url}/docs/assets/swagger-ui-bundle.js?v=" in " ".join(watch.requests)
    assert watch.problems == []


def test_redoc_renders_the_operations_from_the_package_with_no_outside_request(
    start_api: Callable[..., Api], page: Any, screenshots: Screenshots
):
    api = start_api()
    watch = Watch(page)
    page.goto(f"{api.url}/redoc")
    expect(page.get_by_role("heading", name="Publish an event")).to_be_visible()
    expect(page.locator("[data-section-id^='operation/']")).to_have_count(len(_operations(api)))
    screenshots.take(page, "redoc")
    assert watch.outside(api.url) == []
    assert watch.problems == []


def test_a_docs_asset_outside_the_list_is_not_served(start_api: Callable[..., Api]):
    api = start_api()
    with api.client(None) as http:
        assert http.get("/docs/assets/docs.js").headers["content-type"].startswith("text/javascript")
        assert http.get("/docs/assets/LICENSE.redoc").status_code == 404
        assert http.get("/docs/assets/..%2F..%2Fapp.py").status_code == 404
