"""Every shipped language has every string the templates and pages use, and renders every template."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest
from jinja2.ext import babel_extract

from notifyd import i18n
from notifyd.api import routes_preferences
from notifyd.templates.engine import BUILTIN_FILES, PARTS, builtin_source, render
from notifyd.templates.sample import sample_context

ROOT = Path(__file__).resolve().parents[2] / "notifyd"
LANGS = [code for code in i18n.LANGUAGES if code != "en"]


def template_ids() -> set[str]:
    found: set[str] = set()
    folders = [
        resources.files("notifyd.templates").joinpath("web"),
        resources.files("notifyd.templates").joinpath("builtin"),
    ]
    for folder in folders:
        for entry in folder.iterdir():
            with entry.open("rb") as fh:
                for _, _, message, _ in babel_extract(
                    fh, ("_", "gettext"), [], {"extensions": "jinja2.ext.i18n"}
                ):
                    found.add(message if isinstance(message, str) else message[0])
    return found


def python_ids() -> set[str]:
    """Strings passed to web.gettext / _ / web.message in the self-service routes and messages."""
    found: set[str] = set()
    for path in [*ROOT.joinpath("api").glob("routes_*.py"), *ROOT.joinpath("selfservice").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("gettext", "_"):
                    found.update(
                        a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                    )
                if name == "message":  # web.message translates its heading and text itself
                    found.update(
                        k.value.value
                        for k in node.keywords
                        if k.arg in ("heading", "text") and isinstance(k.value, ast.Constant)
                    )
    from notifyd.api.routes_selfservice import ACCEPTED_TEXT

    found.add(ACCEPTED_TEXT)
    found.update(routes_preferences.KIND_LABELS.values())
    found.update(routes_preferences.IMPACT_LABELS.values())
    found.update(["investigating", "identified", "monitoring", "resolved", "postmortem", "operational"])
    found.update(["degraded performance", "partial outage", "major outage", "under maintenance"])
    found.update(["none", "minor", "major", "critical"])
    return found


def test_the_scan_finds_the_strings_it_should() -> None:
    ids = template_ids() | python_ids()
    assert {"Manage your subscription", "Affected components", "Check your inbox", "Critical only"} <= ids
    assert len(ids) > 60


@pytest.mark.parametrize("lang", LANGS)
def test_each_catalogue_translates_every_string(lang: str) -> None:
    catalogue = i18n.catalog_ids(lang)
    missing = sorted(m for m in template_ids() | python_ids() if not catalogue.get(m))
    assert missing == []


@pytest.mark.parametrize("lang", list(i18n.LANGUAGES))
@pytest.mark.parametrize("part", list(BUILTIN_FILES))
def test_every_builtin_template_renders_in_every_language(lang: str, part: str) -> None:
    out = render(part, builtin_source(part), sample_context(lang), lang)
    assert "Database outage" in out
    if lang != "en" and part in ("text", "html", "slack"):
        assert i18n.translations(lang).gettext("Status page") in out
        assert "Status page" not in out


def test_dates_follow_the_language() -> None:
    assert i18n.format_when("2026-11-28T13:00:00Z", "de") != i18n.format_when("2026-11-28T13:00:00Z", "en")
    assert "2026" in i18n.format_when("2026-11-28T13:00:00Z", "ja")


def test_every_channel_with_templates_has_builtin_parts() -> None:
    assert {p for parts in PARTS.values() for p in parts} == set(BUILTIN_FILES)
