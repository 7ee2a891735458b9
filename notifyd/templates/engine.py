"""Sandboxed Jinja2 for message templates: the built-in ones and the ones a page uploads.

A page's template is untrusted code. It runs in Jinja's sandbox, and beyond that:

- at upload, :func:`check` refuses what cannot end well: a syntax error, ``include`` /
  ``extends`` / ``import``, a ``recursive`` loop, loops nested deeper than
  :data:`MAX_LOOP_DEPTH`, and a sample render that fails (an undefined variable, say),
  runs over :data:`MAX_OUTPUT` characters, or takes longer than :data:`MAX_RENDER_S`
  (a safety net for a loaded machine; the caps do the real work);
- at render, ``range`` stops at :data:`MAX_RANGE`, ``*`` and ``**`` cannot build huge
  values, undefined variables raise (StrictUndefined), and output past MAX_OUTPUT or
  time past MAX_RENDER_S stops the render. Any failure is a :class:`TemplateFailure`,
  and the caller falls back to the built-in template.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from notifyd import i18n

#: Parts of a message, and the channels that use each.
PARTS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "sms": ("sms",),
    "slack": ("slack",),
}
BUILTIN_FILES = {
    "subject": "email_subject.txt",
    "text": "email_text.txt",
    "html": "email_html.html",
    "sms": "sms.txt",
    "slack": "slack.json",
}
MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT = 100_000
MAX_RENDER_S = 2.0
MAX_RANGE = 100
MAX_LOOP_DEPTH = 2
MAX_OPERAND = 10_000


class TemplateFailure(Exception):
    """The template cannot be used; the message says why (and where), never with secrets."""


def _safe_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items in templates")
    return r


def _mrkdwn(text: Any) -> str:
    """Slack's mrkdwn escaping: &, < and > only."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        for operand in (left, right):
            if isinstance(operand, int) and abs(operand) > MAX_OPERAND:
                raise SecurityError("numbers that large are not allowed in templates")
        if operator == "**":
            raise SecurityError("the power operator is not allowed in templates")
        return super().call_binop(context, operator, left, right)


@functools.cache
def environment(locale: str, html: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=html,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.globals["range"] = _safe_range
    env.filters["mrkdwn"] = _mrkdwn
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


@functools.cache
def builtin_source(part: str) -> str:
    return resources.files("notifyd.templates").joinpath("builtin", BUILTIN_FILES[part]).read_text("utf-8")


def _compiled(source: str, locale: str, html: bool) -> Any:
    return _compile_cached(source, locale, html)


@functools.lru_cache(maxsize=512)
def _compile_cached(source: str, locale: str, html: bool) -> Any:
    return environment(locale, html).from_string(source)


def render(part: str, source: str, context: dict[str, Any], locale: str) -> str:
    """Render one part; raises TemplateFailure for anything that goes wrong or runs away."""
    html = part == "html"
    try:
        template = _compiled(source, locale, html)
        out = _bounded(template.generate(context))
    except TemplateFailure:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"line {exc.lineno}: {exc.message}") from None
    except TemplateError as exc:
        raise TemplateFailure(str(exc.message or type(exc).__name__)) from None
    except RecursionError:
        raise TemplateFailure("the template recurses too deeply") from None
    except Exception as exc:  # noqa: BLE001 - untrusted code: any error is a failed render
        raise TemplateFailure(f"{type(exc).__name__}: {exc}"[:300]) from None
    if part == "slack":
        try:
            parsed = json.loads(out)
        except ValueError as exc:
            raise TemplateFailure(f"the Slack template must render JSON: {exc}") from None
        if not isinstance(parsed, dict) or not ({"text", "blocks", "attachments"} & parsed.keys()):
            raise TemplateFailure("the Slack template must render an object with text, blocks or attachments")
    if part in ("subject", "sms"):
        out = " ".join(out.split())
    return out


def _bounded(chunks: Iterator[str]) -> str:
    started = time.monotonic()
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise TemplateFailure(f"the template renders more than {MAX_OUTPUT} characters")
        if time.monotonic() - started > MAX_RENDER_S:
            raise TemplateFailure(f"the template takes longer than {MAX_RENDER_S} s to render")
        out.append(chunk)
    return "".join(out)


def check_source(part: str, source: str) -> None:
    """Static checks at upload; raises TemplateFailure naming the problem and its line."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateFailure(f"a template is at most {MAX_TEMPLATE_CHARS} characters")
    env = environment("en", part == "html")
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"line {exc.lineno}: {exc.message}") from None
    for node in tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)):
        raise TemplateFailure(f"line {node.lineno}: include, extends and import are not allowed")
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise TemplateFailure(f"line {loop.lineno}: recursive loops are not allowed")
    depth = _loop_depth(tree)
    if depth > MAX_LOOP_DEPTH:
        raise TemplateFailure(f"loops may nest {MAX_LOOP_DEPTH} deep at most, not {depth}")
    for macro in tree.find_all(nodes.Macro):
        for call in macro.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == macro.name:
                raise TemplateFailure(f"line {call.lineno}: a macro may not call itself")


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    deepest = depth
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, nodes.For) else depth
        deepest = max(deepest, _loop_depth(child, inner))
    return deepest
