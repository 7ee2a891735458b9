"""Browser fixtures: one headless Chromium, a page in a fresh context per test, and screenshots.

Chromium comes from the distribution's package, installed once per session when it is
missing (see tests/support/browser.py); a failed install fails the tests that need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.api.conftest import start_api  # noqa: F401 - a real API server, as the API tests have
from tests.selfservice.conftest import stack  # noqa: F401 - API, worker and stand-ins for self-service
from tests.support.browser import VIEWPORT, Screenshots, chromium_browser, ensure_chromium


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()


@pytest.fixture(scope="package")
def browser(chromium: Path) -> Iterator[Any]:
    """One Chromium for the browser tests; each test's page is in a new context of its own."""
    with chromium_browser() as browser:
        yield browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    shots = Screenshots(request.node.name)
    print(f"screenshots of {request.node.name}: {shots.dir}")
    return shots
