"""Server-rendered pages of the self-service flow (Jinja2 with autoescape, Babel catalogues)."""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from notifyd import i18n
from notifyd.selfservice.pages import PageConfig

CHANNEL_NAMES = {"email": "Email", "sms": "SMS", "slack": "Slack", "webhook": "Webhook"}


@functools.cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=PackageLoader("notifyd", "templates/web"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(name: str, *, page_id: str, config: PageConfig, locale: str | None = None, **values: Any) -> str:
    lang = i18n.normalize(locale, config.default_locale)
    context = {
        "locale": lang,
        "page_id": page_id,
        "page_name": config.display_name(page_id),
        "branding": config.branding,
        "languages": list(i18n.LANGUAGES.items()),
        "channel_names": CHANNEL_NAMES,
        **values,
    }
    return environment(lang).get_template(name).render(context)


def gettext(locale: str | None, text: str) -> str:
    return i18n.translations(i18n.normalize(locale)).gettext(text)


def message(
    *,
    page_id: str,
    config: PageConfig,
    locale: str | None,
    heading: str,
    text: str,
    **values: Any,
) -> str:
    """The one-message page that ends each self-service step; ``heading`` and ``text`` are
    catalogue msgids, translated here so every caller gets the same treatment."""
    return render(
        "message.html",
        page_id=page_id,
        config=config,
        locale=locale,
        heading=gettext(locale, heading),
        text=gettext(locale, text),
        **values,
    )
