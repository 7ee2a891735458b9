"""Helpers for the self-service tests: stand-ins wired to an API and a worker, and link extraction."""

from __future__ import annotations

import re
from typing import Any

PUBLIC = "https://status.example.com"
LINK = re.compile(r"https://status\.example\.com/[^\s\"'<>]+")


def human(token: str | None, client_address: str) -> bool:
    """A CAPTCHA hook for tests: the token 'human' passes."""
    return token == "human"


def links_in(mail: Any) -> list[str]:
    text = mail.message.get_body(("plain",)).get_content()
    return [link.replace("&amp;", "&") for link in LINK.findall(text)]


def local(url: str, api_url: str) -> str:
    """A public link, pointed at the test's API server."""
    return url.replace(PUBLIC, api_url)
