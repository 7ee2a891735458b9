"""Message catalogues (Babel ``.po`` files, one per language) and locale-aware formatting.

The ``.po`` files in this package are the source of truth; each is compiled in memory
on first use, so there is no build step and no ``.mo`` file to forget. English is the
source language: its catalogue is empty and every string stands for itself.
"""

from __future__ import annotations

import functools
import io
from datetime import datetime
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, get_timezone
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: Languages that ship a catalogue, with their own names for the language menu.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "ja": "日本語",
}
DEFAULT = "en"


def normalize(locale: str | None, default: str = DEFAULT) -> str:
    """A shipped language for ``locale`` (``de-AT`` → ``de``), else ``default``."""
    if not locale:
        return default
    code = locale.replace("-", "_").split("_")[0].lower()
    return code if code in LANGUAGES else default


@functools.cache
def translations(locale: str) -> NullTranslations:
    locale = normalize(locale)
    if locale == "en":
        return NullTranslations()
    path = resources.files("notifyd.i18n").joinpath(f"{locale}.po")
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def catalog_ids(locale: str) -> dict[str, str]:
    """msgid -> msgstr of a shipped catalogue (for the completeness test)."""
    path = resources.files("notifyd.i18n").joinpath(f"{locale}.po")
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    return {str(m.id): str(m.string) for m in catalog if m.id}


def format_when(value: str | datetime, locale: str, tz: str = "UTC") -> str:
    """An ISO timestamp as the language writes dates, in the given zone."""
    if isinstance(value, str):
        if not value:
            return ""
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        when = value
    try:
        zone = get_timezone(tz)
        return format_datetime(when, format="medium", tzinfo=zone, locale=Locale.parse(normalize(locale)))
    except (UnknownLocaleError, LookupError, ValueError):
        return when.isoformat()
