"""Headless Chromium for browser tests: the distribution's ``chromium``, driven by Playwright.

Playwright's own browser download needs the internet, which test machines may not
have; the Debian package does not. :func:`ensure_chromium` installs it with apt when
it is missing (tests run as root on a fresh machine), and fails loudly when that
fails: a browser test never skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
#: Flags for a closed network: without the background-networking ones Chromium keeps
#: dialling update, sync and field-trial servers and hammers refused connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots and other browser artefacts; var/ is gitignored.
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


class BrowserUnavailable(RuntimeError):
    """Chromium is missing and could not be installed; the message says what apt answered."""


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        raise BrowserUnavailable(
            f"{CHROMIUM} is missing and there is no apt-get to install the 'chromium' package"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [[apt, "update", "-q"], [apt, "install", "-y", "-q", "--no-install-recommends", "chromium"]]
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise BrowserUnavailable(f"`{' '.join(step)}` failed with exit {done.returncode}:\n{tail}")
    if not CHROMIUM.exists():
        raise BrowserUnavailable(f"apt-get installed 'chromium' but {CHROMIUM} is still missing")
    return CHROMIUM


#: The window every test page gets.
VIEWPORT = {"width": 1400, "height": 1000}


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """A Playwright browser on the distribution's headless Chromium. Tests open a context of
    their own on it (``browser.new_context()``): a new profile, with no cookies, storage or cache
    of another test's, without the second or two that starting a browser per test costs."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class Screenshots:
    """Numbered full-page screenshots of one test, in ``var/test-artifacts/<test name>/``."""

    def __init__(self, test_name: str) -> None:
        self.dir = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.taken: list[Path] = []

    def take(self, page: Any, step: str) -> Path:
        path = self.dir / f"{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path
