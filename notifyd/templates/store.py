"""A page's template overrides, per channel, checked when they are uploaded."""

from __future__ import annotations

import json
from typing import Any

import redis

from notifyd.state.keys import Keys
from notifyd.templates.engine import PARTS, TemplateFailure, check_source, render
from notifyd.templates.sample import sample_context


class TemplateRejected(ValueError):
    """An upload that cannot be used: ``errors`` lists (part, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{part}: {message}" for part, message in errors))
        self.errors = errors


def validate(channel: str, parts: dict[str, Any]) -> dict[str, str]:
    """The parts as strings, after the static checks and a sample render in every language."""
    allowed = PARTS.get(channel)
    if allowed is None:
        raise TemplateRejected([("channel", f"{channel} messages have no templates (webhooks send JSON)")])
    errors: list[tuple[str, str]] = []
    clean: dict[str, str] = {}
    for part, source in parts.items():
        if part not in allowed:
            errors.append((part, f"not a part of {channel} messages; use {', '.join(allowed)}"))
        elif not isinstance(source, str) or not source.strip():
            errors.append((part, "a template is a non-empty string"))
        else:
            clean[part] = source
    if not clean and not errors:
        errors.append(("body", f"give at least one of {', '.join(allowed)}"))
    for part, source in clean.items():
        try:
            check_source(part, source)
            from notifyd import i18n

            for locale in i18n.LANGUAGES:
                render(part, source, sample_context(locale), locale)
        except TemplateFailure as exc:
            errors.append((part, str(exc)))
    if errors:
        raise TemplateRejected(errors)
    return clean


class PageTemplates:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def get(self, page_id: str, channel: str) -> dict[str, str]:
        raw = self.client.hget(self.keys.page_templates(page_id), channel)
        return dict(json.loads(raw)) if raw is not None else {}

    def put(self, page_id: str, channel: str, parts: dict[str, str]) -> None:
        self.client.hset(self.keys.page_templates(page_id), channel, json.dumps(parts))

    def delete(self, page_id: str, channel: str) -> bool:
        return bool(self.client.hdel(self.keys.page_templates(page_id), channel))

    def count_fallback(self, page_id: str, channel: str, part: str) -> None:
        self.client.hincrby(self.keys.template_failures(), f"{page_id}\x1f{channel}\x1f{part}", 1)

    def fallbacks(self, page_id: str, channel: str) -> dict[str, int]:
        out = {}
        for part in PARTS.get(channel, ()):
            raw = self.client.hget(self.keys.template_failures(), f"{page_id}\x1f{channel}\x1f{part}")
            if raw is not None:
                out[part] = int(raw)
        return out
