"""Browser fixtures: a fresh headless Chromium page per test, and its screenshots.

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
from tests.support.browser import Screenshots, chromium_context, ensure_chromium


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()


@pytest.fixture
def page(chromium: Path, tmp_path: Path) -> Iterator[Any]:
    with chromium_context(tmp_path / "chromium-profile") as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        yield page


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    shots = Screenshots(request.node.name)
    print(f"screenshots of {request.node.name}: {shots.dir}")
    return shots
