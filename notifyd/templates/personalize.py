"""Render a batch of messages for their subscribers' languages and the page's templates.

The common case (English, no page templates, default branding) leaves messages as they
are: the adapters render them as they always did, at no extra cost. Otherwise each
message gets a :class:`~channels.base.Rendered`. A page template that fails to render
falls back to the built-in one for that part, and the fallback is counted (Prometheus
and Redis); it never fails the delivery.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
from collections.abc import Callable

from prometheus_client import Counter

from channels.base import Message, Rendered
from notifyd import i18n
from notifyd.runtime.wiring import Runtime
from notifyd.selfservice.pages import Branding, PageConfig, PageConfigRepo
from notifyd.selfservice.prefs import PrefsRepo
from notifyd.templates.engine import PARTS, TemplateFailure, builtin_source, render
from notifyd.templates.sample import message_context
from notifyd.templates.store import PageTemplates

log = logging.getLogger("notifyd.templates")

#: Stand-ins for the per-subscriber links: a batch renders once per language, and each message
#: then gets its own links by substitution (escaped for the part they land in).
MANAGE_MARK = "\ue000manage\ue001"
UNSUBSCRIBE_MARK = "\ue000unsubscribe\ue001"

TEMPLATE_FALLBACKS = Counter(
    "notifyd_template_fallbacks_total",
    "Page templates that failed to render; the built-in one was sent instead",
    ["channel", "part"],
)


class Personalizer:
    def __init__(self, runtime: Runtime) -> None:
        self.pages = PageConfigRepo(runtime.client, runtime.keys)
        self.prefs = PrefsRepo(runtime.client, runtime.keys)
        self.templates = PageTemplates(runtime.client, runtime.keys)

    def __call__(self, page_id: str, channel: str, batch: list[Message]) -> list[Message]:
        if channel not in PARTS or not batch:
            return batch
        config = self.pages.get(page_id)
        overrides = self.templates.get(page_id, channel)
        chosen = self.prefs.get_many(page_id, [m.subscriber_id for m in batch])
        plain = not overrides and config.branding == Branding() and config.branding.name is None
        out = []
        shared: dict[str, dict[str, str | None]] = {}
        for message in batch:
            prefs = chosen.get(message.subscriber_id)
            locale = i18n.normalize(prefs.locale if prefs else None, config.default_locale)
            if plain and locale == "en":
                out.append(message)
                continue
            if locale not in shared:
                shared[locale] = self.render_parts(page_id, channel, message, locale, config, overrides)
            rendered = personal(shared[locale], message)
            out.append(dataclasses.replace(message, rendered=rendered))
        return out

    def render(
        self,
        page_id: str,
        channel: str,
        message: Message,
        locale: str,
        config: PageConfig,
        overrides: dict[str, str],
    ) -> Rendered:
        return personal(self.render_parts(page_id, channel, message, locale, config, overrides), message)

    def render_parts(
        self,
        page_id: str,
        channel: str,
        message: Message,
        locale: str,
        config: PageConfig,
        overrides: dict[str, str],
    ) -> dict[str, str | None]:
        """The parts with link marks in place of the subscriber's own links."""
        n = message.notification
        context = message_context(
            n,
            locale,
            config,
            manage_url=MANAGE_MARK if message.manage_url else None,
            unsubscribe_url=UNSUBSCRIBE_MARK if message.unsubscribe_url else None,
            follow_url=n.follow_url,
        )
        parts: dict[str, str | None] = {}
        for part in PARTS[channel]:
            source = overrides.get(part)
            if source is not None:
                try:
                    parts[part] = render(part, source, context, locale)
                    continue
                except TemplateFailure as exc:
                    TEMPLATE_FALLBACKS.labels(channel, part).inc()
                    self.templates.count_fallback(page_id, channel, part)
                    log.warning(
                        "page %s: the %s %s template failed (%s); using the built-in one",
                        page_id,
                        channel,
                        part,
                        exc,
                    )
            try:
                parts[part] = render(part, builtin_source(part), context, locale)
            except TemplateFailure:
                log.exception("the built-in %s template failed", part)
                parts[part] = None  # the adapter's own rendering
        return parts


def personal(parts: dict[str, str | None], message: Message) -> Rendered:
    """The shared parts with this subscriber's links put in, escaped for each part."""
    manage, unsubscribe = message.manage_url or "", message.unsubscribe_url or ""

    def fill(part: str, escape: Callable[[str], str]) -> str | None:
        text = parts.get(part)
        if text is None:
            return None
        return text.replace(MANAGE_MARK, escape(manage)).replace(UNSUBSCRIBE_MARK, escape(unsubscribe))

    slack = fill("slack", lambda url: json.dumps(url)[1:-1])
    return Rendered(
        subject=fill("subject", str),
        text=fill("text", str),
        html=fill("html", lambda url: html.escape(url, quote=True)),
        sms=fill("sms", str),
        slack=json.loads(slack) if slack else None,
    )
